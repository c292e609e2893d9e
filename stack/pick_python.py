"""Pick the interpreter ``make install`` builds ``.venv`` from: ``python stack/pick_python.py``.

Prints the path of the fastest-built CPython 3.11 on the machine. The flow spends its CPU
running Python, and how CPython was built matters: on the project's 2-core machine the
distribution's ``/usr/bin/python3.11`` (linked statically; Debian builds it with
profile-guided optimization) ran ``python -m bench.flow_profile`` with 9-12% less CPU per event
from a backlog (four pairs) and a median 7% less live at 10k events/s (ten pairs, -2 to
+12%) than pyenv's default build of 3.11 (``--enable-shared``, no optimizations), which
``python3`` resolved to first (2026-12-06, each pair at once, one on each core, then
swapped; ``docs/pipeline-history.md``). The official ``python:3.11`` Docker images are built with
``--enable-optimizations``, so the container already gets a fast one.

A candidate is a ``python3.11`` on ``PATH``, ``python3`` if it is 3.11, or
``/usr/bin/python3.11`` or ``/usr/local/bin/python3.11``; it must be able to create a venv
with pip (``ensurepip``) and have its C headers (``Python.h``: ``make install`` compiles the
native join against them; a distribution's interpreter may lack both without its ``-venv``
and ``-dev`` packages). Among them the first optimized one wins (built with
``--enable-optimizations``, or not loading a shared ``libpython``), else the first one.
``make install PY=...`` overrides the choice; with no candidate at all this prints
``python3`` and the Makefile goes on with it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

PROBE = r"""
import json, os, sys, sysconfig
try:
    import ensurepip, venv
    can_venv = True
except ImportError:
    can_venv = False
try:
    with open("/proc/self/maps") as f:
        shared = "libpython" in f.read()
except OSError:
    shared = None
args = sysconfig.get_config_var("CONFIG_ARGS") or ""
headers = os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h"))
print(json.dumps({"exe": os.path.realpath(sys.executable), "version": list(sys.version_info[:2]),
                  "usable": can_venv and headers, "shared": shared,
                  "pgo": "--enable-optimizations" in args}))
"""


def candidates() -> list[str]:
    """Interpreter paths to probe, in preference order (duplicates removed later)."""
    out: list[str] = []
    for name in ("python3.11", "python3"):
        for d in os.environ.get("PATH", "").split(os.pathsep):
            p = os.path.join(d, name)
            if os.access(p, os.X_OK) and not os.path.isdir(p):
                out.append(p)
    out += [p for p in ("/usr/bin/python3.11", "/usr/local/bin/python3.11") if os.path.exists(p)]
    return out


def optimized(info: dict[str, object]) -> bool:
    """Whether a probed interpreter is an optimized build.

    >>> optimized({"pgo": True, "shared": True}), optimized({"pgo": False, "shared": False})
    (True, True)
    >>> optimized({"pgo": False, "shared": True}), optimized({"pgo": False, "shared": None})
    (False, False)
    """
    return bool(info["pgo"]) or info["shared"] is False


def choose(infos: list[dict[str, object]]) -> str | None:
    """The executable to build the venv from: 3.11 and able to make a venv and build
    extensions (``usable``), the first optimized one, else the first one.

    >>> slow = {"exe": "/pyenv/3.11.7/bin/python3.11", "version": [3, 11], "usable": True,
    ...         "shared": True, "pgo": False}
    >>> fast = {"exe": "/usr/bin/python3.11", "version": [3, 11], "usable": True,
    ...         "shared": False, "pgo": False}
    >>> choose([slow, fast]), choose([slow]), choose([{**fast, "usable": False}, slow])
    ('/usr/bin/python3.11', '/pyenv/3.11.7/bin/python3.11', '/pyenv/3.11.7/bin/python3.11')
    >>> choose([{**fast, "version": [3, 13]}]) is None
    True
    """
    usable = [i for i in infos if i["version"] == [3, 11] and i["usable"]]
    best = next((i for i in usable if optimized(i)), usable[0] if usable else None)
    return str(best["exe"]) if best is not None else None


def probe(path: str) -> dict[str, object] | None:
    """What :data:`PROBE` reports about ``path`` (None if it does not run); ``exe`` is the
    executable it really runs (a pyenv shim is a script that runs one)."""
    try:
        res = subprocess.run([path, "-I", "-c", PROBE], capture_output=True, text=True,  # noqa: S603
                             timeout=20, check=True)
        info: dict[str, object] = json.loads(res.stdout)
    except (OSError, ValueError, subprocess.SubprocessError):
        return None
    return info


def main() -> int:
    probed: set[str] = set()  # files probed (/bin/python3.11 is /usr/bin/python3.11: once)
    ran: set[str] = set()  # executables they ran (a pyenv shim runs one of its versions)
    infos: list[dict[str, object]] = []
    for path in candidates():
        real = os.path.realpath(path)
        if real in probed:
            continue
        probed.add(real)
        info = probe(path)
        if info is None or info["exe"] in ran:
            continue
        ran.add(str(info["exe"]))
        infos.append(info)
    print(choose(infos) or "python3")
    return 0


if __name__ == "__main__":
    sys.exit(main())
