"""The shape of an API key, `kt_live_` + 32 letters and digits — shared by the control plane,
which mints and stores keys, and the data plane, which refuses malformed ones without a round
trip."""

from __future__ import annotations

import secrets
import string

PREFIX = "kt_live_"
LENGTH = len(PREFIX) + 32
LOOKUP_PREFIX_LEN = len(PREFIX) + 6  # the indexed part stored in clear
ALPHABET = string.ascii_letters + string.digits


def random_string(length: int) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def new_api_key() -> str:
    return PREFIX + random_string(LENGTH - len(PREFIX))


def looks_like_api_key(value: str) -> bool:
    return (
        value.startswith(PREFIX)
        and len(value) == LENGTH
        and all(c in ALPHABET for c in value[len(PREFIX) :])
    )
