"""What the data plane remembers of the control plane's answers, for a few seconds.

`GraceCache` holds positive answers (a key's principal, an organization's project) with two
ages: *fresh* for `ttl` seconds, when the answer is used without asking again, and *stale* until
`stale` seconds, when it is used only while the control plane cannot be reached. Entries carry
their organization so a push from the control plane (`evict(org)`) drops them at once. A fresh
answer past half its `ttl` is *due*: it is still used, and asked again in the background
(`Refreshes`), so an answer in steady use is renewed before it expires and no request waits for
the control plane. How old an answer can be when it is used is unchanged: under `ttl`.

`KeyCache` adds a separate, bounded negative cache for keys the control plane refused, so a
spray of bad keys can neither hammer the control plane nor push good keys out. Keys are cached
under their SHA-256 digest, never in the clear.

`CachedLookup` puts a `GraceCache` in front of one kind of control-plane call (a project, an
active release, a project's env vars): concurrent misses share one call (`SingleFlight`), an
outage falls back to a stale answer, and an answer that straddles an eviction is not cached.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

from karta.core.clock import SYSTEM, Clock
from karta.dataplane.control.client import ControlPlaneUnavailable
from karta.dataplane.principal import Principal

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Hit(Generic[V]):
    value: V
    fresh: bool
    due: bool = False  # fresh, but past half its ttl: to be asked again in the background


class GraceCache(Generic[K, V]):
    def __init__(
        self,
        *,
        ttl: float,
        stale: float,
        max_entries: int,
        clock: Clock = SYSTEM,
    ) -> None:
        self.ttl = ttl
        self.stale = max(stale, ttl)
        self.max_entries = max(max_entries, 1)
        self._clock = clock
        self._entries: OrderedDict[K, tuple[float, int | None, V]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: K) -> Hit[V] | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        age = self._clock.monotonic() - entry[0]
        if age >= self.stale:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return Hit(entry[2], fresh=age < self.ttl, due=age >= self.ttl / 2)

    def put(self, key: K, organization_id: int | None, value: V) -> None:
        self._entries[key] = (self._clock.monotonic(), organization_id, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)  # the least recently used

    def discard(self, key: K) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()

    def evict(self, organization_id: int) -> int:
        doomed = [k for k, (_, org, _) in self._entries.items() if org == organization_id]
        for key in doomed:
            del self._entries[key]
        return len(doomed)


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class KeyCache:
    def __init__(
        self,
        *,
        ttl: float = 5.0,
        stale: float = 300.0,
        max_entries: int = 1024,
        negative_ttl: float = 5.0,
        negative_flush_interval: float = 1.0,
        clock: Clock = SYSTEM,
    ) -> None:
        self.positive: GraceCache[str, Principal] = GraceCache(
            ttl=ttl, stale=stale, max_entries=max_entries, clock=clock
        )
        negative_ttl = min(negative_ttl, 5.0)
        self.negative: GraceCache[str, None] = GraceCache(
            ttl=negative_ttl, stale=negative_ttl, max_entries=max_entries, clock=clock
        )
        self.negative_flush_interval = negative_flush_interval
        self._clock = clock
        self._last_flush: float | None = None

    def get(self, key: str) -> Hit[Principal] | None:
        return self.positive.get(digest(key))

    def refused(self, key: str) -> bool:
        return self.negative.get(digest(key)) is not None

    def put(self, key: str, principal: Principal) -> None:
        hashed = digest(key)
        self.negative.discard(hashed)
        self.positive.put(hashed, principal.organization_id, principal)

    def put_refused(self, key: str) -> None:
        hashed = digest(key)
        self.positive.discard(hashed)
        self.negative.put(hashed, None, None)

    def evict(self, organization_id: int) -> int:
        """Drop the organization's keys now; flush refused keys too, at most once per interval
        (a burst of pushes must not turn into a storm of re-validations)."""
        now = self._clock.monotonic()
        if self._last_flush is None or now - self._last_flush >= self.negative_flush_interval:
            self.negative.clear()
            self._last_flush = now
        return self.positive.evict(organization_id)


class SingleFlight:
    """One call per key at a time, however many callers want its answer."""

    def __init__(self) -> None:
        self._inflight: dict[Hashable, asyncio.Future[Any]] = {}

    async def run(self, key: Hashable, call: Callable[[], Awaitable[T]]) -> T:
        future = self._inflight.get(key)
        if future is None:
            future = self._inflight[key] = asyncio.ensure_future(call())
            future.add_done_callback(lambda _: self._inflight.pop(key, None))
        return cast(T, await asyncio.shield(future))


class Refreshes:
    """Re-asks for due answers, in the background: at most one per key at a time. A refresh
    that fails changes nothing (the answer ages on, and the next request past its `ttl` asks
    on its own clock, as without a refresh)."""

    def __init__(self) -> None:
        self._running: dict[Hashable, asyncio.Task[Any]] = {}

    @property
    def running(self) -> int:
        return len(self._running)

    def start(self, key: Hashable, refresh: Callable[[], Awaitable[Any]]) -> None:
        if key in self._running:
            return

        async def run() -> None:
            try:
                await refresh()
            except Exception as exc:
                log.debug("refreshing a cached answer failed: %r", exc)
            finally:
                del self._running[key]

        self._running[key] = asyncio.ensure_future(run())


class CachedLookup(Generic[K, V]):
    """A control-plane answer per key, remembered for `ttl` seconds (and, while the control
    plane cannot be reached, up to `stale`), dropped per organization by `evict`."""

    def __init__(
        self,
        *,
        ttl: float,
        stale: float,
        max_entries: int,
        clock: Clock = SYSTEM,
    ) -> None:
        self.cache: GraceCache[K, V] = GraceCache(
            ttl=ttl, stale=stale, max_entries=max_entries, clock=clock
        )
        self._flights = SingleFlight()
        self._refreshes = Refreshes()
        self._evictions = 0

    async def get(self, key: K, organization_id: int | None, call: Callable[[], Awaitable[V]]) -> V:
        """The cached answer while fresh (asked again in the background once due); otherwise
        `call()` (shared by concurrent callers). Errors other than an outage are never cached:
        they reach every caller that shared it. An answer of no organization (`None`) goes
        only with `clear`."""
        hit = self.cache.get(key)
        if hit is not None and hit.fresh:
            if hit.due:
                self._refreshes.start(key, lambda: self._ask(key, organization_id, call, None))
            return hit.value
        return await self._ask(key, organization_id, call, hit)

    async def _ask(
        self,
        key: K,
        organization_id: int | None,
        call: Callable[[], Awaitable[V]],
        hit: Hit[V] | None,
    ) -> V:
        generation = self._evictions
        try:
            value = await self._flights.run(key, call)
        except ControlPlaneUnavailable:
            if hit is not None:
                return hit.value  # the stale grace
            raise
        if generation == self._evictions:
            self.cache.put(key, organization_id, value)
        return value

    def evict(self, organization_id: int) -> int:
        self._evictions += 1
        return self.cache.evict(organization_id)

    def clear(self) -> int:
        self._evictions += 1
        count = len(self.cache)
        self.cache.clear()
        return count
