"""Server settings from the environment (`KARTA_*`), with embedded defaults under $KARTA_HOME."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field, replace
from pathlib import Path

from karta.core.home import karta_home
from karta.core.internal_auth import InternalAccess
from karta.core.providers import ProviderURLs


def _int(name: str, default: int | None) -> int | None:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def _float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value not in (None, "") else default


def base_url(value: str | None) -> str | None:
    """A gateway's base URL as Karta compares them: no trailing slash."""
    return value.strip().rstrip("/") or None if value else None


def peers(value: str | None) -> frozenset[str]:
    return frozenset(u for item in (value or "").split(",") if (u := base_url(item)))


class ConfigError(ValueError):
    """The environment cannot make a working server; the message says what to set."""


@dataclass(frozen=True)
class Settings:
    home: Path = field(default_factory=karta_home)
    database_url: str | None = None
    approval_ttl: float = 3600.0
    idle_timeout: float = 600.0
    max_live_harnesses: int = 32
    # Harness processes started at once (more wait in line); default: the core count.
    max_starts: int = field(default_factory=lambda: os.cpu_count() or 2)
    # Pre-started harnesses per (release, harness, agent, env), sized by the arrivals of the
    # last `pool_window` seconds within [pool_min, pool_max]; 0 disables. Off unless set (the
    # server's environment defaults turn it on: `from_env`).
    pool_min: int = 0
    pool_max: int = 0
    pool_window: float = 60.0
    keepalive: float = 15.0
    harness_max_retries: int | None = None
    max_events_per_session: int = 10_000
    # A turn may not grow its session's folder past this (measured every few seconds).
    session_disk_bytes: int = 4 << 30
    disk_check_interval: float = 2.0
    open_auth: bool = False
    # The control plane (see docs/control-plane.md) and how the planes trust each other.
    control_plane_url: str | None = None
    internal: InternalAccess = field(default_factory=InternalAccess)
    session_token_secret: str | None = None
    # `karta serve DIR`: the local organization's project whose working copy is DIR, served
    # on its project routes until a release of it is published and activated.
    local_project: str | None = None
    local_organization: str = "local"
    # What the data plane remembers of the control plane's answers (docs/configuration.md).
    key_cache_ttl: float = 5.0
    key_cache_max: int = 1024
    key_cache_stale: float = 300.0
    negative_flush_interval: float = 1.0
    breaker_threshold: int = 5
    breaker_window: float = 2.0
    # Releases: active-release pointers and project env vars are remembered this long (a push
    # drops them at once); this many materialized releases are kept on disk.
    active_release_ttl: float = 5.0
    release_cache_max: int = 16
    # The embed edge's backstop: requests per client IP and origin per window (seconds).
    embed_rate_limit: int = 60
    embed_rate_window: float = 60.0
    # Provider keys (BYOK) and model settings are remembered this long (at most 60 s; a push
    # drops them at once), and where each provider's API is (docs/byok.md).
    byok_cache_ttl: float = 60.0
    providers: ProviderURLs = field(default_factory=ProviderURLs)
    # Where harness processes run (docs/security.md): auto picks bwrap when it works here.
    # A production data plane refuses to run them unsandboxed unless told it may.
    sandbox: str = "auto"
    production: bool = False
    allow_unsandboxed: bool = False
    # The gateway (docs/gateway.md): this instance's public base URL, given to peers for
    # answers; the peers' base URLs it may deliver to (nothing else is ever called); how
    # deliveries are retried.
    gateway_url: str | None = None
    gateway_peers: frozenset[str] = frozenset()
    gateway_retry_base: float = 1.0
    gateway_retry_max: float = 300.0
    gateway_max_attempts: int = 12
    # Replicas (docs/deployment.md): with a Redis URL, event wake-ups fan out and session
    # ownership is leased there; without one, both stay in this process. A replica is known to
    # the others by its id and its internal URL (where they forward a session's turns to it).
    redis_url: str | None = None
    redis_prefix: str = "karta:"
    replica_id: str = field(default_factory=socket.gethostname)
    replica_url: str | None = None
    lease_ttl: float = 10.0
    # How often a subscriber re-reads the log even when no wake-up came (one lost in a Redis
    # reconnect delays it at most this long).
    events_poll_interval: float = 5.0

    @property
    def replicated(self) -> bool:
        return self.redis_url is not None

    @property
    def node_dir(self) -> Path:
        """What belongs to this process alone (the model proxy's socket, sandbox run dirs):
        one folder per replica when replicas share a home."""
        sandbox = self.home / "sandbox"
        return sandbox / "replicas" / self.replica_id if self.replicated else sandbox

    @property
    def releases(self) -> Path:
        return self.home / "releases"

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'karta.db'}"

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        settings = cls(
            home=karta_home(),
            database_url=os.environ.get("KARTA_DATABASE_URL") or None,
            approval_ttl=_float("KARTA_APPROVAL_TTL", 3600.0),
            idle_timeout=_float("KARTA_HARNESS_IDLE_TIMEOUT", 600.0),
            max_live_harnesses=_int("KARTA_MAX_LIVE_HARNESSES", 32) or 32,
            max_starts=_int("KARTA_MAX_STARTS", None) or os.cpu_count() or 2,
            pool_min=_int("KARTA_POOL_MIN", 1) or 0,
            pool_max=_int("KARTA_POOL_MAX", 4) or 0,
            pool_window=_float("KARTA_POOL_WINDOW", 60.0),
            keepalive=_float("KARTA_SSE_KEEPALIVE", 15.0),
            harness_max_retries=_int("KARTA_HARNESS_MAX_RETRIES", None),
            max_events_per_session=_int("KARTA_MAX_EVENTS_PER_SESSION", 10_000) or 10_000,
            session_disk_bytes=(_int("KARTA_SESSION_DISK_MB", 4096) or 4096) << 20,
            disk_check_interval=_float("KARTA_DISK_CHECK_INTERVAL", 2.0),
            control_plane_url=os.environ.get("KARTA_CONTROL_PLANE_URL") or None,
            internal=InternalAccess.from_env(),
            session_token_secret=os.environ.get("KARTA_SESSION_TOKEN_SECRET") or None,
            key_cache_ttl=_float("KARTA_KEY_CACHE_TTL", 5.0),
            key_cache_max=_int("KARTA_KEY_CACHE_MAX", 1024) or 1024,
            key_cache_stale=_float("KARTA_KEY_CACHE_STALE", 300.0),
            negative_flush_interval=_float("KARTA_NEG_FLUSH_MIN_INTERVAL", 1.0),
            breaker_threshold=_int("KARTA_BREAKER_THRESHOLD", 5) or 5,
            breaker_window=_float("KARTA_BREAKER_WINDOW", 2.0),
            active_release_ttl=_float("KARTA_ACTIVE_RELEASE_CACHE_TTL", 5.0),
            release_cache_max=_int("KARTA_RELEASE_CACHE_MAX", 16) or 16,
            embed_rate_limit=_int("KARTA_EMBED_TOKEN_RATE_LIMIT", 60) or 60,
            embed_rate_window=_float("KARTA_EMBED_TOKEN_RATE_WINDOW", 60.0),
            byok_cache_ttl=_float("KARTA_BYOK_CACHE_TTL", 60.0),
            providers=ProviderURLs.from_env(),
            sandbox=os.environ.get("KARTA_SANDBOX") or "auto",
            production=os.environ.get("KARTA_ENV", "").lower() == "production",
            allow_unsandboxed=os.environ.get("KARTA_SANDBOX_ALLOW_NONE", "") in ("1", "true"),
            gateway_url=base_url(os.environ.get("KARTA_GATEWAY_URL")),
            gateway_peers=peers(os.environ.get("KARTA_GATEWAY_PEERS")),
            gateway_retry_base=_float("KARTA_GATEWAY_RETRY_BASE", 1.0),
            gateway_retry_max=_float("KARTA_GATEWAY_RETRY_MAX", 300.0),
            gateway_max_attempts=_int("KARTA_GATEWAY_MAX_ATTEMPTS", 12) or 12,
            redis_url=os.environ.get("KARTA_REDIS_URL") or None,
            redis_prefix=os.environ.get("KARTA_REDIS_PREFIX") or "karta:",
            replica_id=os.environ.get("KARTA_REPLICA_ID") or socket.gethostname(),
            replica_url=os.environ.get("KARTA_REPLICA_URL") or None,
            lease_ttl=_float("KARTA_LEASE_TTL", 10.0),
            events_poll_interval=_float("KARTA_EVENTS_POLL_INTERVAL", 5.0),
        )
        return replace(settings, **overrides)  # type: ignore[arg-type]
