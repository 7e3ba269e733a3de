"""Control-plane settings from the environment, with embedded defaults under $KARTA_HOME."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from karta.controlplane.bootstrap import LocalBootstrap
from karta.core.home import karta_home
from karta.core.http_limits import Limits
from karta.core.internal_auth import InternalAccess
from karta.core.providers import ProviderURLs


def _split(value: str | None) -> tuple[str, ...]:
    return tuple(v.strip().rstrip("/") for v in (value or "").split(",") if v.strip())


@dataclass(frozen=True)
class ControlSettings:
    home: Path = field(default_factory=karta_home)
    database_url: str | None = None
    internal: InternalAccess = field(default_factory=InternalAccess)
    session_token_secret: str | None = None
    data_plane_urls: tuple[str, ...] = ()
    signup_enabled: bool = True
    login_ttl: float = 30 * 86400.0
    invitation_ttl: float = 7 * 86400.0
    secrets_key: str | None = None  # KARTA_SECRETS_KEY; generated under home when unset
    secrets_keys: str | None = None  # KARTA_SECRETS_KEYS: `id:base64,…`, newest first
    # Provider keys (docs/byok.md): where their validation calls go, and whether an org's model
    # endpoint may be http, a private or loopback host, or an IP literal (tests, labs).
    providers: ProviderURLs = field(default_factory=ProviderURLs)
    allow_private_endpoints: bool = False
    # Usage paid with an organization's own provider keys is recorded and priced either way;
    # with this, it counts nothing toward the organization's cost cap.
    own_keys_outside_cost_cap: bool = False
    release_max_bytes: int = 200 << 20  # compressed upload
    limits: Limits = field(default_factory=Limits)  # every other request (karta.core.http_limits)
    # `karta serve`: create the local org, its key (`app.state.local_key`) and project.
    local: LocalBootstrap | None = None

    @property
    def artifacts(self) -> Path:
        return self.home / "artifacts"

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'control.db'}"

    @classmethod
    def from_env(cls, **overrides: object) -> ControlSettings:
        settings = cls(
            home=karta_home(),
            database_url=os.environ.get("KARTA_CONTROL_DATABASE_URL") or None,
            internal=InternalAccess.from_env(),
            session_token_secret=os.environ.get("KARTA_SESSION_TOKEN_SECRET") or None,
            data_plane_urls=_split(os.environ.get("KARTA_DATA_PLANE_URLS")),
            signup_enabled=os.environ.get("KARTA_SIGNUP", "on").lower()
            not in ("off", "0", "false", "no"),
            invitation_ttl=float(os.environ.get("KARTA_INVITATION_TTL") or 7 * 86400),
            secrets_key=os.environ.get("KARTA_SECRETS_KEY") or None,
            secrets_keys=os.environ.get("KARTA_SECRETS_KEYS") or None,
            providers=ProviderURLs.from_env(),
            allow_private_endpoints=os.environ.get("KARTA_MODEL_ENDPOINTS_ALLOW_PRIVATE", "")
            in ("1", "true"),
            own_keys_outside_cost_cap=os.environ.get("KARTA_BYOK_OUTSIDE_COST_CAP", "")
            in ("1", "true"),
            release_max_bytes=int(os.environ.get("KARTA_RELEASE_MAX_BYTES") or 200 << 20),
            limits=Limits.from_env(),
        )
        return replace(settings, **overrides)  # type: ignore[arg-type]
