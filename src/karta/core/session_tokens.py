"""Session tokens: short-lived HS256 JWTs the control plane mints for end users and the data
plane verifies offline with the shared `KARTA_SESSION_TOKEN_SECRET`."""

from __future__ import annotations

import time
from dataclasses import dataclass

import jwt

MAX_TTL = 3600
DEFAULT_TTL = 900
SCOPE = "session"


@dataclass(frozen=True)
class SessionClaims:
    org_id: int
    org_slug: str
    project_id: int
    project_slug: str
    exp: int
    sub: str | None = None
    budget_ok: bool = True
    # The embed key an anonymous end user's token came from (`ek`): what their spending counts
    # against (the key's anonymous spend cap).
    embed_key_id: int | None = None


def mint(secret: str, claims: SessionClaims) -> str:
    payload: dict[str, object] = {
        "org_id": claims.org_id,
        "org_slug": claims.org_slug,
        "project_id": claims.project_id,
        "project_slug": claims.project_slug,
        "scope": SCOPE,
        "exp": claims.exp,
        "budget_ok": claims.budget_ok,
    }
    if claims.sub is not None:
        payload["sub"] = claims.sub
    if claims.embed_key_id is not None:
        payload["ek"] = claims.embed_key_id
    return jwt.encode(payload, secret, algorithm="HS256")


def expiry(ttl_seconds: int) -> int:
    return int(time.time()) + min(max(ttl_seconds, 1), MAX_TTL)


def verify(secret: str, token: str) -> SessionClaims | None:
    """The claims of a valid, unexpired session token; None for anything else."""
    if token.count(".") != 2:
        return None
    try:
        payload = jwt.decode(
            token, secret, algorithms=["HS256"], options={"require": ["exp", "scope"]}
        )
    except jwt.PyJWTError:
        return None
    try:
        if payload["scope"] != SCOPE or not isinstance(payload["exp"], int):
            return None
        sub = payload.get("sub")
        ek = payload.get("ek")
        return SessionClaims(
            org_id=int(payload["org_id"]),
            org_slug=str(payload["org_slug"]),
            project_id=int(payload["project_id"]),
            project_slug=str(payload["project_slug"]),
            exp=payload["exp"],
            sub=str(sub) if sub is not None else None,
            budget_ok=bool(payload.get("budget_ok", True)),
            embed_key_id=int(ek) if ek is not None else None,
        )
    except (KeyError, TypeError, ValueError):
        return None
