"""Secrets at rest: passwords and API keys under argon2id, login tokens under SHA-256.

API keys and passwords get the slow hash: a leaked table must not be cheap to search. Login
tokens are 240-bit random strings, so a plain digest is enough and lookups stay indexed.
"""

from __future__ import annotations

import functools
import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from karta.core.api_keys import random_string

USER_TOKEN_PREFIX = "ktu_"

# argon2id at OWASP's recommended floor (19 MiB, 2 passes): ~20 ms here, paid once per key per
# cache window by the data plane and once per login.
_hasher = PasswordHasher(time_cost=2, memory_cost=19_456, parallelism=1)


@functools.cache
def _decoy() -> str:
    """Compared against when no stored hash matches, so a miss costs the same as a hit."""
    return _hasher.hash(secrets.token_urlsafe(16))


def hash_secret(secret: str) -> str:
    return _hasher.hash(secret)


def verify_secret(stored_hash: str | None, secret: str) -> bool:
    try:
        return _hasher.verify(stored_hash or _decoy(), secret) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def new_user_token() -> str:
    return USER_TOKEN_PREFIX + random_string(40)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
