"""Contracts shared by the gateway and the dataflows: events, policy, keys, topics, settings.

Nothing in here does IO. ``gateway`` and ``dataflows`` both import from ``schemas`` and
never from each other.
"""

SCHEMA_VERSION = 1
