"""The rewardflow gateway: decisions, feedback and signals over HTTP, policies from Redis.

Imports only :mod:`schemas`; clients open in the app lifespan (see :mod:`gateway.main`).
"""
