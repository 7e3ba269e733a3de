"""The data plane's side of the embed edge: what it remembers of publishable keys, of the
origins allowed on each project's routes (CORS) and of hosted pages, and the backstop rate limit
on what browsers may ask of it without a credential.

Answers are cached for the key cache's TTL and dropped whole on any push from the control
plane: a key, its origins and its project can belong to any organization, and refilling is one
call. An outage falls back to a stale answer within the grace, and otherwise refuses (no origin
is allowed, no token minted): CORS fails closed like auth.

The rate limit is a fixed window per (route, client IP, origin), in process; past it a browser
gets 429 with `Retry-After` until its window ends.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from starlette.types import Scope

from karta.core import embed
from karta.core import internal_api as api
from karta.core.clock import SYSTEM, Clock
from karta.core.errors import TooManyRequests
from karta.dataplane.control.cache import CachedLookup, digest
from karta.dataplane.control.client import ControlPlaneClient, ControlPlaneUnavailable


class RateLimited(TooManyRequests):
    code = "rate_limited"


@dataclass
class _Window:
    start: float
    hits: int


class FixedWindow:
    """At most `limit` hits per `window` seconds per key."""

    MAX_KEYS = 10_000

    def __init__(self, limit: int, window: float, clock: Clock = SYSTEM) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._windows: dict[tuple[str, ...], _Window] = {}

    def hit(self, *key: str) -> None:
        """Count one hit, or raise `RateLimited` (nothing counted) when the window is full."""
        now = self._clock.monotonic()
        current = self._windows.get(key)
        if current is None or now - current.start >= self.window:
            if len(self._windows) >= self.MAX_KEYS:
                self._prune(now)
            current = self._windows[key] = _Window(now, 0)
        if current.hits >= self.limit:
            wait = max(1, math.ceil(current.start + self.window - now))
            raise RateLimited(
                "too many requests from this page: try again later",
                retry_after=wait,
                retry_after_seconds=wait,
            )
        current.hits += 1

    def _prune(self, now: float) -> None:
        for key in [k for k, w in self._windows.items() if now - w.start >= self.window]:
            del self._windows[key]
        if len(self._windows) >= self.MAX_KEYS:
            self._windows.clear()  # a flood of distinct clients: start over rather than grow


def own_origin(scope: Scope) -> str | None:
    """The origin this request was sent to (its scheme and `Host`): a page of the data plane's
    own, the hosted chat page, calls from it."""
    host = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
    return embed.origin_or_none(f"{scope.get('scheme', 'http')}://{host}") if host else None


class EmbedEdge:
    def __init__(
        self,
        control: ControlPlaneClient | None,
        *,
        ttl: float,
        stale: float,
        max_entries: int,
        rate_limit: int,
        rate_window: float,
        clock: Clock = SYSTEM,
    ) -> None:
        self.control = control
        self.keys: CachedLookup[str, api.EmbedKeyInfo | None] = CachedLookup(
            ttl=ttl, stale=stale, max_entries=max_entries, clock=clock
        )
        self.origins: CachedLookup[str, api.EmbedOrigins] = CachedLookup(
            ttl=ttl, stale=stale, max_entries=max_entries, clock=clock
        )
        self.pages: CachedLookup[tuple[str, str], api.HostedPage | None] = CachedLookup(
            ttl=ttl, stale=stale, max_entries=max_entries, clock=clock
        )
        self.limiter = FixedWindow(rate_limit, rate_window, clock)

    def _control(self) -> ControlPlaneClient:
        if self.control is None:
            raise ControlPlaneUnavailable("embedding needs a control plane", retry_after=30)
        return self.control

    async def key(self, embed_key: str) -> api.EmbedKeyInfo | None:
        if not embed.looks_like_embed_key(embed_key):
            return None
        control = self._control()
        return await self.keys.get(digest(embed_key), None, lambda: control.embed_key(embed_key))

    async def allows(self, ref: str, origin: str, scope: Scope) -> bool:
        """Whether a page at `origin` may call `/v1/projects/{ref}/…` (CORS)."""
        if self.control is None:
            return False
        control = self.control
        try:
            allowed = await self.origins.get(ref, None, lambda: control.embed_origins(ref))
        except ControlPlaneUnavailable:
            return False
        return origin in allowed.origins or (allowed.hosted_page and origin == own_origin(scope))

    async def hosted_page(self, org: str, project: str) -> api.HostedPage | None:
        control = self._control()
        return await self.pages.get((org, project), None, lambda: control.hosted_page(org, project))

    async def mint(self, body: api.MintEmbedToken) -> api.EmbedToken | api.EmbedRefusal:
        return await self._control().mint_embed_token(body)

    def evict(self) -> int:
        """The control plane's push: something of some organization changed."""
        return self.keys.clear() + self.origins.clear() + self.pages.clear()
