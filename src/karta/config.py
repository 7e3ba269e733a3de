"""Server settings from the environment (`KARTA_*`), with embedded defaults under $KARTA_HOME."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path


def _int(name: str, default: int | None) -> int | None:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def _float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value not in (None, "") else default


def karta_home() -> Path:
    return Path(os.environ.get("KARTA_HOME") or Path.home() / ".karta").expanduser().resolve()


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
    open_auth: bool = False

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
        )
        return replace(settings, **overrides)  # type: ignore[arg-type]
