"""Bearer-key authentication: every request resolves to a `Principal` or gets a 401.

Validated keys are cached for a few seconds, keyed by a digest of the key (never the key)."""

from __future__ import annotations

import hashlib
import time

from fastapi import Request

from karta.errors import Unauthorized
from karta.identity import authenticate
from karta.principal import OPEN, Principal

CACHE_TTL = 5.0
CACHE_MAX = 1024


class KeyCache:
    def __init__(self, ttl: float = CACHE_TTL, max_entries: int = CACHE_MAX) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, Principal]] = {}

    @staticmethod
    def _digest(key: str) -> str:
        return hashlib.sha256(key.encode()).hexdigest()

    def get(self, key: str) -> Principal | None:
        hit = self._entries.get(self._digest(key))
        if hit is None or hit[0] < time.monotonic():
            return None
        return hit[1]

    def put(self, key: str, principal: Principal) -> None:
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[self._digest(key)] = (time.monotonic() + self.ttl, principal)


async def principal(request: Request) -> Principal:
    state = request.app.state
    if state.settings.open_auth:
        return OPEN
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("missing bearer credential: send 'Authorization: Bearer kt_live_…'")
    cache: KeyCache = state.key_cache
    found = cache.get(token)
    if found is None:
        found = await authenticate(state.db, token)
        if found is None:
            raise Unauthorized("invalid or revoked API key")
        cache.put(token, found)
    return found
