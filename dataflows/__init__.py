"""Bytewax dataflows and the pure cores they are wired from.

Pure modules (no IO, picklable state, tested without services): ``reward_model``, ``join``,
``projections``, ``learner``, ``agent_state``, ``parse``. IO edges: ``sinks``, ``flow``,
``run``.
"""
