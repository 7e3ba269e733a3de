"""Slugs: the lowercase-letters-digits-and-dashes names of organizations and projects in URLs."""

from __future__ import annotations

import re

MAX_LEN = 64


def slugify(name: str, max_len: int = MAX_LEN) -> str:
    """The slug a name stands for ("My Bot" → "my-bot"); empty when nothing of it is usable."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:max_len].strip("-")
