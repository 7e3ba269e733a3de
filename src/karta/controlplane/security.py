"""Secrets at rest: passwords and API keys under argon2id, login tokens under SHA-256.

API keys and passwords get the slow hash: a leaked table must not be cheap to search. Login
tokens are 240-bit random strings, so a plain digest is enough and lookups stay indexed. A key
verified once is remembered by this process (`VerifiedKeys`).
"""

from __future__ import annotations

import functools
import hashlib
import secrets
from collections import OrderedDict

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


class VerifiedKeys:
    """API keys this process has verified, so a key's argon2 check is paid once per process,
    not once per cache window of every data plane (it is on a request's clock there).

    Remembered: the SHA-256 of the presented key with the hash it matched. A later check of
    the same key against the same stored hash is a lookup; anything else (an unknown key, a
    changed hash) is verified in full. Only a key that was presented, and right, is ever
    remembered, so the shortcut tells a guesser nothing. Revocation is unaffected: it is read
    from the key's row on every check."""

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._known: OrderedDict[str, str] = OrderedDict()

    def verify(self, stored_hash: str | None, presented: str) -> bool:
        seen = digest(presented)
        if stored_hash is not None and self._known.get(seen) == stored_hash:
            self._known.move_to_end(seen)
            return True
        if not verify_secret(stored_hash, presented):
            return False
        assert stored_hash is not None
        self._known[seen] = stored_hash
        while len(self._known) > self.size:
            self._known.popitem(last=False)
        return True


VERIFIED_KEYS = VerifiedKeys()


def new_user_token() -> str:
    return USER_TOKEN_PREFIX + random_string(40)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
