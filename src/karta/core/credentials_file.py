"""`$KARTA_HOME/credentials.json` (mode 0600): where `karta serve`, `karta signup` and
`karta login` leave URLs and credentials for the CLI and scripts."""

from __future__ import annotations

import json
import os
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


def write_private_json(path: Path, data: dict[str, Any]) -> Path:
    """Replace the file atomically; it is never readable by others, even for a moment."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2)
    os.chmod(tmp, 0o600)
    tmp.replace(path)
    return path
