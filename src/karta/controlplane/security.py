"""Secrets at rest: passwords and API keys under argon2id, login tokens under SHA-256.

API keys and passwords get the slow hash: a leaked table must not be cheap to search. Login
tokens are 240-bit random strings, so a plain digest is enough and lookups stay indexed.
"""

from __future__ import annotations

import hashlib
import secrets
import string

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

API_KEY_PREFIX = "kt_live_"
API_KEY_LENGTH = len(API_KEY_PREFIX) + 32
LOOKUP_PREFIX_LEN = len(API_KEY_PREFIX) + 6
USER_TOKEN_PREFIX = "ktu_"
_ALPHABET = string.ascii_letters + string.digits

# argon2id at OWASP's recommended floor (19 MiB, 2 passes): ~20 ms here, paid once per key per
# cache window by the data plane and once per login.
_hasher = PasswordHasher(time_cost=2, memory_cost=19_456, parallelism=1)
# Compared against when no stored key matches, so a miss costs the same as a hit.
_DECOY = _hasher.hash(secrets.token_urlsafe(16))


def hash_secret(secret: str) -> str:
    return _hasher.hash(secret)


def verify_secret(stored_hash: str | None, secret: str) -> bool:
    try:
        return _hasher.verify(stored_hash or _DECOY, secret) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def random_string(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def new_api_key() -> str:
    return API_KEY_PREFIX + random_string(API_KEY_LENGTH - len(API_KEY_PREFIX))


def looks_like_api_key(value: str) -> bool:
    return (
        value.startswith(API_KEY_PREFIX)
        and len(value) == API_KEY_LENGTH
        and all(c in _ALPHABET for c in value[len(API_KEY_PREFIX) :])
    )


def new_user_token() -> str:
    return USER_TOKEN_PREFIX + random_string(40)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
