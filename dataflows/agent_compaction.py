"""Housekeeping of an agent's state as it goes: expiry of what the dedup horizon passed and
compaction of what no longer changes.

Both run from :meth:`dataflows.agent_state.AgentState._release` every so many applied
events; neither changes what the agent computes, only what it keeps and how its next
snapshot pickles. Compaction pickles, ahead of time, what the next epoch end would otherwise
pickle all at once (with recovery on, the cold store writes those pieces in the background,
:mod:`dataflows.cold_store`), so the epoch end is left with the last few seconds of each
agent.
"""

from __future__ import annotations

import math
import zlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dataflows.agent_state import AgentState

#: applied events between two :func:`prune` calls
PRUNE_EVERY = 512
#: applied events between two :func:`compact` calls
COMPACT_EVERY = 64
#: seconds of event time behind the watermark after which an open-decision bucket is pickled
#: as the agent goes (signals mostly join a decision within seconds; one that comes later
#: makes its bucket pickle again)
SEAL_LAG = 3.0
#: dedup ids per chunk pickled as the agent goes
CHUNK_IDS = 256


def compact(st: AgentState) -> None:
    """Pickle open-decision buckets ``SEAL_LAG`` behind the watermark, the dedup ids in
    chunks of ``CHUNK_IDS``, and one piece for each dedup bucket the watermark has passed
    (``tests/dataflows/test_dedup.py`` and ``test_open_decisions.py`` check both through
    :class:`~dataflows.agent_state.AgentState`)."""
    wm = st.wm
    st.open.seal(wm - SEAL_LAG)
    # What the watermark passed no longer changes: its chunks merge into one piece. The
    # buckets are aligned in event time, so every agent would merge at the same moment:
    # each waits a fraction of a bucket of its own (from its id) to spread the work.
    lag = (zlib.crc32(st.agent_id.encode()) % 997) / 997 * st.seen.span
    st.seen.seal(wm - lag)
    st.closed.seal(wm - st.cfg.window - lag)  # a decision closes up to a window late
    st.seen.chunk(CHUNK_IDS)
    st.closed.chunk(CHUNK_IDS)


def prune(st: AgentState) -> None:
    """Forget dedup ids older than the horizon and users whose newest decision's window
    has passed (credit assignment cannot reach them)."""
    horizon = st.wm - st.cfg.dedup_horizon
    if horizon == -math.inf:
        return
    st.seen.expire(horizon)
    st.closed.expire(horizon)
    window, wm = st.cfg.window, st.wm
    st.by_user = {u: last for u, last in st.by_user.items() if last[0] + window > wm}
