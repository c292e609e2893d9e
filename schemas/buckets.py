"""Context buckets: the part of a decision's context that the learner keys values by.

Both the gateway (to look up action values) and the dataflow (to update them) use
:func:`context_bucket`, so the two always agree on where an observation belongs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

#: Bucket used when an agent has no context keys, and the agent-wide fallback.
GLOBAL_BUCKET = "*"


def _fmt(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def context_bucket(context: Mapping[str, object], context_keys: Sequence[str]) -> str:
    """Return the bucket name of ``context`` for the agent's ``context_keys``.

    Keys are taken in the order the agent declares them; a missing key reads as ``?``.

    >>> context_bucket({"slot": "morning", "day": "mon", "x": 1}, ["slot", "day"])
    'slot=morning|day=mon'
    >>> context_bucket({"room": 5.0, "dm": True}, ["room", "dm"])
    'room=5|dm=true'
    >>> context_bucket({"slot": "morning"}, [])
    '*'
    >>> context_bucket({}, ["slot"])
    'slot=?'
    """
    if not context_keys:
        return GLOBAL_BUCKET
    return "|".join(f"{k}={_fmt(context[k]) if k in context else '?'}" for k in context_keys)
