"""Where Karta keeps its state: `$KARTA_HOME`, default `~/.karta`."""

from __future__ import annotations

import os
from pathlib import Path


def karta_home() -> Path:
    return Path(os.environ.get("KARTA_HOME") or Path.home() / ".karta").expanduser().resolve()
