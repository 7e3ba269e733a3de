"""What `karta serve` keeps for its two planes under $KARTA_HOME: the service token they
authenticate each other with and the session-token secret, generated on first start and kept
(mode 0600) so they survive restarts. Environment variables, when set, win."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from karta.core.credentials_file import read_private_json, write_private_json
from karta.core.internal_auth import InternalAccess

SECRETS_FILE = "serve-secrets.json"


@dataclass(frozen=True)
class PlaneSecrets:
    internal: InternalAccess
    session_token_secret: str


def _stored(path: Path) -> dict[str, str]:
    return {k: v for k, v in read_private_json(path).items() if isinstance(v, str)}


def plane_secrets(home: Path) -> PlaneSecrets:
    path = home / SECRETS_FILE
    stored = _stored(path)
    wanted = {
        "service_token": stored.get("service_token") or secrets.token_urlsafe(32),
        "session_token_secret": stored.get("session_token_secret") or secrets.token_urlsafe(32),
    }
    if wanted != stored:
        write_private_json(path, wanted)
    internal = InternalAccess.from_env()
    if not internal.tokens:
        internal = InternalAccess.build(
            [wanted["service_token"]],
            tuple(str(n) for n in internal.networks),
            tuple(internal.hosts),
        )
    secret = os.environ.get("KARTA_SESSION_TOKEN_SECRET") or wanted["session_token_secret"]
    return PlaneSecrets(internal, secret)
