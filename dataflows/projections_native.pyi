"""Types of the compiled projections (``dataflows/projections_native.pyx``)."""

from collections import deque
from typing import Any

class NativeProjections:
    history_length: int
    half_life: float
    interactions: int
    reward_sum: float
    last_reward_ts: float | None
    windows: dict[str, dict[int, list[float]]]
    relationships: dict[str, list[float]]
    recent: deque[dict[str, Any]]
    per_action: dict[str, list[int]]
    per_bucket: dict[str, dict[str, list[int]]]
    touched_users: set[str]
    def __init__(self, history_length: int = 20, half_life: float = ...) -> None: ...
    def apply(self, *, user_id: str, decision_id: str, action: str, bucket: str,
              reward: float, engaged: bool, close_ts: float,
              close_iso: str | None = None) -> None: ...
    def relationship_doc(self, user_id: str) -> dict[str, Any]: ...
    def docs(self, as_of: float, full: bool = True) -> dict[str, Any]: ...
    def window_docs(self, as_of: float) -> dict[str, dict[str, Any]]: ...
    def history_json(self) -> bytes: ...
    def take_touched_users(self) -> list[str]: ...
