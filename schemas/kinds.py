"""Vocabularies: feedback kinds, signal kinds and which of them close a decision."""

from __future__ import annotations

from typing import Literal

FeedbackKind = Literal[
    "thumbs", "rating", "accept", "ignore", "more_like_this", "less_like_this"
]
SignalKind = Literal[
    "reply_latency_ms",
    "message_length",
    "sentiment",
    "abandonment",
    "session_end",
    "reinvite",
    "reaction",
]

FEEDBACK_KINDS: tuple[str, ...] = FeedbackKind.__args__  # type: ignore[attr-defined]
SIGNAL_KINDS: tuple[str, ...] = SignalKind.__args__  # type: ignore[attr-defined]

#: Implicit signals that end the interaction: they close the decision like explicit feedback.
TERMINAL_SIGNALS: frozenset[str] = frozenset({"session_end", "abandonment"})
