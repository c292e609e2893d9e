"""How often a tqdm bar redraws: in place on a terminal, seldom in a log.

A bar written to a file (``make bench-pipeline > log``, a CI log) cannot redraw in place:
every refresh is a new line, and a benchmark at tqdm's default 0.1 s left ~300 of them.
Every long-running command here takes its bar's ``mininterval`` from :func:`redraw_every`.
"""

from __future__ import annotations

import sys
from typing import TextIO

#: seconds between redraws of a bar that is not on a terminal
IN_A_LOG = 15.0


def redraw_every(on_terminal: float = 0.5, stream: TextIO | None = None) -> float:
    """``on_terminal`` seconds when ``stream`` (default ``sys.stderr``, where tqdm writes)
    is a terminal, else :data:`IN_A_LOG`.

    >>> import io
    >>> redraw_every(0.5, io.StringIO())
    15.0
    """
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return on_terminal if isatty is not None and isatty() else IN_A_LOG
