"""How often a tqdm bar redraws: in place on a terminal, seldom in a log.

A bar written to a file (``make bench-pipeline > log``, a CI log) cannot redraw in place:
every redraw is a new line there (2026-12-06: 952 of them in ``make bench-pipeline``'s log,
2,778 in ``make bench-capacity``'s). Every long-running command here takes its bar's
``mininterval`` from :func:`redraw_every`.
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
