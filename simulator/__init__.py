"""Simulated people with hidden preferences, for driving rewardflow and measuring learning.

- :mod:`simulator.life`: the life-management world (5 meters, 10 action types, 28 slots a
  week, hidden archetypes, Accept/Ignore as reward); its vocabulary and archetype tables
  are in :mod:`simulator.life_archetypes`.
- :mod:`simulator.companion`: the companion world (hidden trait tastes, rooms, implicit
  signals).
- :mod:`simulator.runner`: one simulation loop; :mod:`simulator.backends` its drivers, over
  HTTP (the running stack) or in process (a learner, the random policy or the oracle).
- :mod:`simulator.demo`: ``python -m simulator.demo`` prints acceptance per week against
  the oracle and random baselines and draws learning curves.
"""
