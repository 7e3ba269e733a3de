"""First-start bootstrap of the embedded server: the local org, its API key and
`$KARTA_HOME/credentials.json` (mode 0600) for the CLI and scripts."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.ext.asyncio import async_sessionmaker

from karta.identity import authenticate, create_api_key, ensure_local_org

CREDENTIALS_FILE = "credentials.json"


@dataclass(frozen=True)
class Credentials:
    url: str
    api_key: str
    created: bool
    path: Path


def read_credentials(home: Path) -> dict[str, str]:
    path = home / CREDENTIALS_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_credentials(home: Path, data: dict[str, str]) -> Path:
    path = home / CREDENTIALS_FILE
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2)
    os.chmod(tmp, 0o600)
    tmp.replace(path)
    return path


async def ensure_credentials(db: async_sessionmaker, home: Path, url: str) -> Credentials:
    """Reuse the key in credentials.json while it is still valid; otherwise mint a new one."""
    org = await ensure_local_org(db)
    stored = read_credentials(home)
    key = stored.get("api_key", "")
    created = False
    if not key or await authenticate(db, key) is None:
        key = await create_api_key(db, org.id, "local serve key")
        created = True
    path = write_credentials(home, {**stored, "url": url, "api_key": key})
    return Credentials(url, key, created, path)
