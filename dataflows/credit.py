"""Credit assignment: which decision a signal judges.

A signal that names its ``decision_id`` judges that decision. One without goes to the latest
decision of the same agent and user whose reward window contains the signal's event time.
Events are applied in event-time order (:mod:`dataflows.agent_state`), so the user's newest
decision so far is the latest one at or before the signal; if its window has passed, so have
all earlier ones'. A signal with nothing to credit goes to the DLQ with the reason returned
here; one whose decision already closed is late.
"""

from __future__ import annotations

import uuid
from collections.abc import Container, Mapping

UNKNOWN = "unknown decision_id (never seen, or older than the dedup horizon)"
UNATTRIBUTED = "unattributed: no decision of this agent and user within the window"


def credit(decision_id: uuid.UUID | None, user_id: str, ts: float, open_: Container[str],
           closed: Container[str], by_user: Mapping[str, tuple[float, str]],
           window: float) -> tuple[str | None, str]:
    """``(decision id, "open" | "closed")`` of the decision a signal at event time ``ts``
    judges, or ``(None, reason)`` when there is none (``by_user``: each user's newest
    decision as ``(ts, id)``).

    >>> by_user = {"u": (100.0, "d2")}
    >>> credit(None, "u", 130.0, {"d2"}, set(), by_user, 600.0)
    ('d2', 'open')
    >>> credit(None, "u", 800.0, {"d2"}, set(), by_user, 600.0)[0] is None  # window passed
    True
    >>> credit(None, "v", 130.0, {"d2"}, set(), by_user, 600.0)[1] == UNATTRIBUTED
    True

    The window is ``[ts, ts + window)``: its start is in, its end is not.

    >>> credit(None, "u", 100.0, {"d2"}, set(), by_user, 600.0)
    ('d2', 'open')
    >>> credit(None, "u", 700.0, {"d2"}, set(), by_user, 600.0)[1] == UNATTRIBUTED
    True
    """
    if decision_id is not None:
        did = str(decision_id)
        if did in open_:
            return did, "open"
        if did in closed:
            return did, "closed"
        return None, UNKNOWN
    last = by_user.get(user_id)
    if last is None or not last[0] <= ts < last[0] + window:
        return None, UNATTRIBUTED
    return last[1], "open" if last[1] in open_ else "closed"
