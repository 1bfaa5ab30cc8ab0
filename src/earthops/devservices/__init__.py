"""Local services on loopback for development, tests and benchmarks (Redis; free ports)."""

from earthops.devservices.local import free_port, redis_server

__all__ = ["free_port", "redis_server"]
