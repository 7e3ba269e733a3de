"""`$KARTA_HOME/credentials.json` (mode 0600): where `karta serve`, `karta signup` and
`karta login` leave URLs and credentials for the CLI, the SDK and scripts.

`url`, `control_url` and `api_key` at the top are the default server: the one `karta serve`
started last, or the control plane of `karta signup`. Each `karta serve` also keeps its own
entry under `servers`, keyed by its data-plane URL (`{"control_url", "api_key"}`), so servers
sharing a home never overwrite each other's key; a client looks its server up there first."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from pathlib import Path
from typing import Any

CREDENTIALS_FILE = "credentials.json"


def read_credentials(home: Path) -> dict[str, Any]:
    return read_private_json(home / CREDENTIALS_FILE)


def read_private_json(path: Path) -> dict[str, Any]:
    """The JSON object in `path`; empty when it is missing or not an object."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_credentials(home: Path, data: dict[str, Any]) -> Path:
    return write_private_json(home / CREDENTIALS_FILE, data)


def server_entry(stored: dict[str, Any], url: str) -> dict[str, Any]:
    """What the credentials file keeps for the server at `url` (empty when nothing)."""
    servers = stored.get("servers")
    entry = servers.get(url.rstrip("/")) if isinstance(servers, dict) else None
    return entry if isinstance(entry, dict) else {}


def record_server(home: Path, url: str, control_url: str, api_key: str) -> Path:
    """Make the server at `url` the default and (re)write its own entry, keeping the others
    (under a lock: servers starting together each keep their entry)."""
    home.mkdir(parents=True, exist_ok=True)
    with open(home / f"{CREDENTIALS_FILE}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        stored = read_credentials(home)
        servers = stored.get("servers")
        servers = servers if isinstance(servers, dict) else {}
        entry = {"control_url": control_url, "api_key": api_key}
        return write_credentials(
            home,
            {
                **stored,
                "url": url,
                "control_url": control_url,
                "api_key": api_key,
                "servers": {**servers, url: entry},
            },
        )


def write_private_json(path: Path, data: dict[str, Any]) -> Path:
    """Replace the file atomically; it is never readable by others, even for a moment."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=2)
        os.replace(name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(name)
        raise
    return path
