"""Which replica owns each session. A session's turns, approvals and interrupts run on its
owner, the one replica holding its lease; every other replica forwards them there
(`cluster/forward.py`) and serves streams from the shared event log.

A lease is taken by the replica that gets a request for a session nobody holds, renewed every
third of its time to live while the owner lives, given up when the session has been idle for
`idle` seconds, and expires `ttl` seconds after its owner died. Every replica also looks every
half `ttl` for sessions the database says have a live turn but that nobody holds (their owner
died mid-turn) and claims them, so such a turn ends `failed` within about the lease time even
if nobody asks about the session. One server looks only as it starts: while it runs, every live
turn in its database is its own.

The lease's value names the owner: its replica id, its internal URL and a token of this
process, so a replica restarted under the same id knows a lease of its previous life.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from redis.exceptions import RedisError

from karta.core.clock import SYSTEM, Clock
from karta.core.errors import Unavailable
from karta.dataplane.cluster.coordinator import Coordinator

log = logging.getLogger(__name__)

CLAIM_ATTEMPTS = 3


@dataclass(frozen=True)
class Owner:
    replica: str
    url: str
    token: str

    def encode(self) -> str:
        return json.dumps([self.replica, self.url, self.token])

    @classmethod
    def decode(cls, raw: str) -> Owner | None:
        try:
            replica, url, token = json.loads(raw)
        except (ValueError, TypeError):
            return None
        return cls(str(replica), str(url), str(token))


class OwnerHooks(Protocol):
    async def adopt(self, session_id: str) -> None:
        """This replica just became the owner: close what a previous owner left running."""
        ...

    async def abandon(self, session_id: str) -> None:
        """This replica is no longer the owner: drop what it keeps of the session."""
        ...

    def busy(self, session_id: str) -> bool:
        """A turn of the session runs here, or one that ended is still being written down (its
        lease is kept however long either takes)."""
        ...

    async def orphans(self) -> list[str]:
        """Sessions the database says have a live turn."""
        ...


class Ownership:
    def __init__(
        self,
        coordinator: Coordinator,
        *,
        replica: str,
        url: str,
        prefix: str,
        ttl: float,
        idle: float,
        clock: Clock = SYSTEM,
    ) -> None:
        self.coordinator = coordinator
        self.me = Owner(replica, url, secrets.token_hex(8))
        self.ttl = ttl
        self.idle = idle
        self._prefix = f"{prefix}lease:"
        self._clock = clock
        self._value = self.me.encode()
        self._held: dict[str, float] = {}  # session id → last used (monotonic)
        self._claiming: dict[str, asyncio.Lock] = {}
        self._hooks: OwnerHooks | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._failing_since: float | None = None

    def _key(self, session_id: str) -> str:
        return self._prefix + session_id

    def holds(self, session_id: str) -> bool:
        return session_id in self._held

    def touch(self, session_id: str) -> None:
        if session_id in self._held:
            self._held[session_id] = self._clock.monotonic()

    # --- claiming ------------------------------------------------------------------------------

    async def owner(self, session_id: str) -> Owner | None:
        """Who runs the session's turns: None when it is this replica (which claims a session
        nobody holds, adopting what a dead owner left), else the live owner."""
        if session_id in self._held:
            self.touch(session_id)
            return None
        lock = self._claiming.setdefault(session_id, asyncio.Lock())
        try:
            async with lock:
                return await self._claim(session_id)
        except (OSError, RedisError) as exc:
            log.warning("claiming session %s: %s", session_id, type(exc).__name__)
            message = "replicas cannot coordinate (Redis is unreachable)"
            raise Unavailable(message, retry_after=2) from exc
        finally:
            if not lock.locked():
                self._claiming.pop(session_id, None)

    async def hold_new(self, session_id: str) -> None:
        """A session this replica has just created is its own from the start: there is nothing
        an earlier owner left to adopt (and its pre-started harness stays)."""
        try:
            held = await self.coordinator.acquire(self._key(session_id), self._value, self.ttl)
        except (OSError, RedisError) as exc:
            log.warning("holding session %s: %s", session_id, type(exc).__name__)
            raise Unavailable(
                "replicas cannot coordinate (Redis is unreachable)", retry_after=2
            ) from exc
        if not held:
            raise Unavailable("the session's owner is changing; retry", retry_after=1)
        self._held[session_id] = self._clock.monotonic()

    async def _claim(self, session_id: str) -> Owner | None:
        if session_id in self._held:
            return None
        key = self._key(session_id)
        for _ in range(CLAIM_ATTEMPTS):
            if await self.coordinator.acquire(key, self._value, self.ttl):
                self._held[session_id] = self._clock.monotonic()
                try:
                    assert self._hooks is not None, "ownership is started with the runtime"
                    await self._hooks.adopt(session_id)
                except BaseException:
                    del self._held[session_id]
                    await self.coordinator.release(key, self._value)
                    raise
                return None
            [raw] = await self.coordinator.holders([key])
            if raw is None:
                continue  # it expired in between
            holder = Owner.decode(raw)
            if holder is None or self._previous_life(holder):
                await self.coordinator.release(key, raw)  # ours from before a restart, or junk
                continue
            return holder
        raise Unavailable("the session's owner is changing; retry", retry_after=1)

    def _previous_life(self, holder: Owner) -> bool:
        return holder.replica == self.me.replica and holder.token != self.me.token

    async def settle(self, session_id: str, gone: Owner) -> Owner | None:
        """`gone` did not answer: wait (up to one lease time) for its lease to expire or move,
        then claim the session or name its new owner."""
        deadline = self._clock.monotonic() + self.ttl * 1.5
        while True:
            owner = await self.owner(session_id)
            if owner != gone or self._clock.monotonic() > deadline:
                return owner
            await self._clock.sleep(min(0.2, self.ttl / 10))

    async def release(self, session_id: str) -> None:
        if self._held.pop(session_id, None) is None:
            return
        try:
            await self.coordinator.release(self._key(session_id), self._value)
        finally:
            assert self._hooks is not None
            await self._hooks.abandon(session_id)

    # --- keeping ------------------------------------------------------------------------------

    async def start(self, hooks: OwnerHooks) -> None:
        """Adopt what dead owners left (before serving: on one server, that is everything a
        crash or a restart interrupted), then keep renewing, and, among replicas, looking."""
        self._hooks = hooks
        await self.reap()
        self._tasks = [asyncio.create_task(self._every(self.ttl / 3, self.renew))]
        if self.coordinator.shared:
            self._tasks.append(asyncio.create_task(self._every(self.ttl / 2, self.reap)))

    async def _every(self, period: float, work: Callable[[], Awaitable[None]]) -> None:
        while True:
            await self._clock.sleep(period)
            try:
                await work()
            except Exception:
                log.exception("session ownership: %s failed", work.__name__)

    async def renew(self) -> None:
        """Renew the leases held; give up idle ones; drop the ones lost (this replica was cut
        off from the coordinator for longer than a lease lives, and another may own them)."""
        assert self._hooks is not None
        now = self._clock.monotonic()
        idle = [
            sid
            for sid, used in list(self._held.items())
            if now - used >= self.idle and not self._hooks.busy(sid)
        ]
        for sid in idle:
            await self.release(sid)
        held = {self._key(sid): sid for sid in self._held}
        try:
            lost = await self.coordinator.extend(dict.fromkeys(held, self._value), self.ttl)
        except Exception:
            if self._failing_since is None:
                self._failing_since = now
            if now - self._failing_since < self.ttl:
                raise
            lost = set(held)  # they have expired by now: someone else may hold them
        else:
            self._failing_since = None
        for key in lost:
            sid = held[key]
            if self._held.pop(sid, None) is not None:
                log.warning("lost the lease of session %s", sid)
                await self._hooks.abandon(sid)

    async def reap(self) -> None:
        """Claim the sessions with a live turn that nobody holds."""
        assert self._hooks is not None
        orphans = [sid for sid in await self._hooks.orphans() if sid not in self._held]
        if not orphans:
            return
        holders = await self.coordinator.holders([self._key(sid) for sid in orphans])
        for sid, raw in zip(orphans, holders, strict=True):
            holder = Owner.decode(raw) if raw is not None else None
            if holder is None or self._previous_life(holder):
                try:
                    await self.owner(sid)
                except Exception:
                    log.exception("adopting session %s failed", sid)

    async def stop(self) -> None:
        """Stop keeping leases and give them all up (the turns here have stopped), so other
        replicas take the sessions at once instead of after the lease time."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for sid in list(self._held):
            with contextlib.suppress(Exception):
                await self.release(sid)
