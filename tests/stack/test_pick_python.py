"""`make install` builds .venv from the interpreter stack/pick_python.py prints."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from stack import pick_python

ROOT = Path(__file__).resolve().parents[2]


def test_probe_reports_this_interpreter():
    info = pick_python.probe(sys.executable)
    assert info is not None
    assert info["version"] == list(sys.version_info[:2])
    assert Path(str(info["exe"])).resolve() == Path(sys.executable).resolve()
    assert info["usable"] is True  # it made the venv running the tests, and built its extensions
    assert info["shared"] in (True, False)  # Linux: read from /proc/self/maps


def test_script_prints_a_python_311_that_can_make_a_venv():
    out = subprocess.run([sys.executable, str(ROOT / "stack" / "pick_python.py")],
                         capture_output=True, text=True, timeout=60, check=True).stdout.strip()
    info = pick_python.probe(out)
    assert info is not None, out
    assert info["version"] == [3, 11]
    assert info["usable"] is True


def test_an_optimized_build_wins_over_an_earlier_plain_one():
    plain = {"exe": "/a/python3.11", "version": [3, 11], "usable": True, "shared": True,
             "pgo": False}
    pgo = {**plain, "exe": "/b/python3.11", "pgo": True}
    static = {**plain, "exe": "/c/python3.11", "shared": False}
    assert pick_python.choose([plain, pgo, static]) == "/b/python3.11"
    assert pick_python.choose([plain, static]) == "/c/python3.11"
    assert pick_python.choose([plain]) == "/a/python3.11"
    assert pick_python.choose([]) is None
