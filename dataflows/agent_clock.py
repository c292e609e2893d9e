"""An agent's clocks: its watermark, the idle fallback's wake-up, and what is due next.

The watermark's rules are in :mod:`dataflows.agent_state`'s docstring ("Watermark"); this
is the arithmetic, as a base of :class:`~dataflows.agent_state.AgentState` over the state it
keeps.
"""

from __future__ import annotations

import math
from typing import Any

from dataflows.join_types import JoinConfig
from dataflows.open_decisions import OpenDecisions

NEG_INF = -math.inf


class AgentClocks:
    """Watermark arithmetic over an agent's state (the attributes annotated here)."""

    cfg: JoinConfig
    #: newest event time applied or buffered per stream: "d" decisions, "s" signals
    max_ts: dict[str, float]
    #: wall time of the agent's newest event
    last_arrival: float
    wm: float
    buffer: list[tuple[Any, ...]]
    open: OpenDecisions
    publish_at: float | None

    @property
    def max_ts_any(self) -> float | None:
        return max(self.max_ts.values()) if self.max_ts else None

    def _watermark(self, now: float, input_last: float, floor: float = NEG_INF) -> float:
        wm = self.wm if self.wm > floor else floor
        mt = self.max_ts
        if not mt:
            return wm
        if len(mt) == 2:  # both streams ("d", "s") seen
            d, s = mt["d"], mt["s"]
            low = (d if d < s else s) - self.cfg.lateness
            if low > wm:
                wm = low
        idle = self.cfg.idle
        if idle is not None:
            last = self.last_arrival
            idle_for = now - (last if last >= input_last else input_last)
            if idle_for >= idle:
                top = max(mt.values()) + (idle_for - idle)
                if top > wm:
                    wm = top
        return wm

    def notify_at(self, input_last: float = 0.0, due: float | None = None) -> float | None:
        """Wall time at which the idle fallback would next release or close something,
        if no input arrives before then (``input_last``: newest input of the process;
        ``due``: :meth:`next_due`, when the caller has it)."""
        if self.cfg.idle is None or not self.max_ts:
            return None
        if due is None:
            due = self.next_due()
            if due is None:
                return None
        top = max(self.max_ts.values())
        return max(self.last_arrival, input_last) + self.cfg.idle + max(0.0, due - top)

    def _next_deadline(self) -> float:
        """Event time of the oldest open decision's window end."""
        first = self.open.first()
        return first[2] + self.cfg.window if first is not None else math.inf

    def next_due(self) -> float | None:
        """Event time of the next thing a watermark would release, close or publish."""
        due = self.buffer[0][0] if self.buffer else math.inf
        dl = self._next_deadline()
        if dl < due:
            due = dl
        pub = self.publish_at
        if pub is not None and pub < due:
            due = pub
        return None if due == math.inf else due
