"""Types of the compiled agent join (``dataflows/agent_native.pyx``)."""

from collections.abc import Sequence
from typing import Any

from dataflows.dedup import ExpiringIds
from dataflows.join_types import Emitted, JoinConfig, LearnerCallbacks
from dataflows.open_decisions import OpenDecisions
from dataflows.projections_native import NativeProjections

class NativeAgentState:
    tenant: str
    agent_id: str
    cfg: JoinConfig
    template: str | None
    learner: LearnerCallbacks
    proj: NativeProjections
    counts: dict[str, int]
    seq: int
    clock: float | None
    wm: float
    buffer: list[tuple[Any, ...]]
    open: OpenDecisions
    seen: ExpiringIds
    closed: ExpiringIds
    by_user: dict[str, tuple[float, str]]
    publish_at: float | None
    published_at: float
    def __init__(self, tenant: str, agent_id: str, cfg: JoinConfig) -> None: ...
    @property
    def max_ts_any(self) -> float | None: ...
    def on_events(self, items: Sequence[Any], now: float, input_last: float = 0.0,
                  floor: float = ...) -> Emitted: ...
    def ingest(self, ev: Any, meta: Any, now: float, input_last: float = 0.0,
               out: Emitted | None = None, floor: float = ...,
               raw: bytes | None = None) -> Emitted: ...
    def advance(self, now: float, input_last: float = 0.0, floor: float = ...) -> Emitted: ...
    def drain(self) -> Emitted: ...
    def next_due(self) -> float | None: ...
    def notify_at(self, input_last: float = 0.0, due: float | None = None) -> float | None: ...
    def document(self, policies: list[tuple[dict[str, Any], bytes]],
                 full: bool = True) -> dict[str, Any]: ...
