"""Data-plane replicas: session ownership by lease, event wake-ups across replicas, and
forwarding a session's actions to its owner (docs/deployment.md)."""

from __future__ import annotations

from karta.dataplane.cluster.coordinator import Coordinator, InProcess
from karta.dataplane.settings import ConfigError, Settings


def check_replica(settings: Settings) -> None:
    """With `KARTA_REDIS_URL`, a replica must say where the others reach it, and hold the
    service token they forward with."""
    if settings.redis_url is None:
        return
    if not settings.replica_url:
        raise ConfigError("KARTA_REDIS_URL is set: set KARTA_REPLICA_URL (where replicas reach us)")
    if settings.internal.outbound_token is None:
        raise ConfigError("KARTA_REDIS_URL is set: replicas need KARTA_SERVICE_TOKENS to forward")


def coordinator_for(settings: Settings) -> Coordinator:
    """In-process without `KARTA_REDIS_URL`, Redis with it."""
    check_replica(settings)
    if settings.redis_url is None:
        return InProcess()
    from karta.dataplane.cluster.redis import RedisCoordinator

    return RedisCoordinator(settings.redis_url, settings.redis_prefix)
