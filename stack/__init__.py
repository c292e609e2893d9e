"""Local process management: the embedded broker, Redis, and the `make run` launcher."""
