"""Server settings from the environment (`KARTA_*`), with embedded defaults under $KARTA_HOME."""

from __future__ import annotations

import os
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


class ConfigError(ValueError):
    """The environment cannot make a working server; the message says what to set."""


@dataclass(frozen=True)
class Settings:
    home: Path = field(default_factory=karta_home)
    database_url: str | None = None
    approval_ttl: float = 3600.0
    idle_timeout: float = 600.0
    max_live_harnesses: int = 32
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
    # Provider keys (BYOK) and model settings are remembered this long (at most 60 s; a push
    # drops them at once), and where each provider's API is (docs/byok.md).
    byok_cache_ttl: float = 60.0
    providers: ProviderURLs = field(default_factory=ProviderURLs)
    # Where harness processes run (docs/security.md): auto picks bwrap when it works here.
    # A production data plane refuses to run them unsandboxed unless told it may.
    sandbox: str = "auto"
    production: bool = False
    allow_unsandboxed: bool = False

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
            byok_cache_ttl=_float("KARTA_BYOK_CACHE_TTL", 60.0),
            providers=ProviderURLs.from_env(),
            sandbox=os.environ.get("KARTA_SANDBOX") or "auto",
            production=os.environ.get("KARTA_ENV", "").lower() == "production",
            allow_unsandboxed=os.environ.get("KARTA_SANDBOX_ALLOW_NONE", "") in ("1", "true"),
        )
        return replace(settings, **overrides)  # type: ignore[arg-type]
