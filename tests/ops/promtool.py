"""Run ``promtool`` from tests: find it (installing it on first use) and check things with it.

``promtool`` comes from ``docker/tools/ensure-promtool.sh`` (``make tools`` runs it; so does
the first call here when it is missing). If it cannot be installed, every caller fails with
the installer's output: these checks never skip silently.

    from tests.ops.promtool import check_metrics
    check_metrics(httpx.get(f"{base}/metrics").text)   # raises PromtoolError on problems
"""

from __future__ import annotations

import os
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENSURE = ROOT / "docker" / "tools" / "ensure-promtool.sh"
TOOLS_BIN = Path(os.environ.get("RF_TOOLS_DIR", ROOT / "var" / "tools" / "bin"))


class PromtoolError(AssertionError):
    """promtool rejected its input; the message carries promtool's own output."""


@lru_cache(maxsize=1)
def promtool_path() -> str:
    """Path of a working promtool: ``$PROMTOOL``, the repo's tools dir, PATH, or installed now."""
    candidates = [os.environ.get("PROMTOOL"), str(TOOLS_BIN / "promtool"), shutil.which("promtool")]
    for c in candidates:
        if c and Path(c).is_file() and os.access(c, os.X_OK):
            return c
    try:
        proc = subprocess.run(
            ["/bin/bash", str(ENSURE), str(TOOLS_BIN)],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        msg = f"promtool is not installed and {ENSURE.name} could not run: {exc}"
        raise RuntimeError(msg) from exc
    path = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    if proc.returncode != 0 or not path or not Path(path).is_file():
        msg = (
            f"promtool is not installed and {ENSURE.relative_to(ROOT)} could not install it "
            f"(exit {proc.returncode}):\n{proc.stdout}{proc.stderr}"
        )
        raise RuntimeError(msg)
    return path


def run_promtool(
    *args: str, stdin: str | None = None, cwd: str | Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``promtool ARGS`` and return the finished process (never raises on exit code)."""
    return subprocess.run(
        [promtool_path(), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        check=False,
    )


def _require_ok(proc: subprocess.CompletedProcess[str], what: str) -> str:
    out = (proc.stdout + proc.stderr).strip()
    if proc.returncode != 0:
        msg = f"promtool {what} failed (exit {proc.returncode}):\n{out}"
        raise PromtoolError(msg)
    return out


def check_metrics(text: str, *, lint: bool = True) -> None:
    """Run ``promtool check metrics`` on a Prometheus exposition ``text``.

    Raises :class:`PromtoolError` with promtool's output when the text does not parse, or,
    with ``lint`` (the default), when promtool reports lint problems (camelCase names,
    counters without ``_total``, missing HELP, ...). ``lint=False`` only rejects parse errors.
    """
    if not text.strip():
        msg = "promtool check metrics: empty exposition text"
        raise PromtoolError(msg)
    proc = run_promtool("check", "metrics", stdin=text)
    if proc.returncode == 3 and not lint:  # 3: parsed fine, lint problems only
        return
    _require_ok(proc, "check metrics")


def check_rules(*paths: str | Path) -> str:
    """``promtool check rules PATHS``; returns promtool's output, raises on failure."""
    return _require_ok(run_promtool("check", "rules", *map(str, paths)), "check rules")


def check_config(path: str | Path) -> str:
    """``promtool check config PATH`` (also checks the rule files it names)."""
    return _require_ok(run_promtool("check", "config", str(path)), "check config")


def run_rule_tests(path: str | Path) -> str:
    """``promtool test rules PATH`` (alert unit tests); raises on any failing case."""
    return _require_ok(run_promtool("test", "rules", str(path)), "test rules")
