"""The live-harness registry: one warm harness session per active Karta session.

Idle sessions are closed `idle_timeout` after their last turn, by a sweeper that runs on the
runtime's clock whether or not traffic arrives; when `max_live` sessions are open, the least
recently used idle one is closed to make room, and a turn that would need one more while every
slot is busy is refused (503 `harness_capacity` with `Retry-After`). A closed session resumes
from the harness's own transcript on its next turn.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass

from karta.core.clock import SYSTEM, Clock
from karta.core.errors import HarnessCapacity
from karta.dataplane.harness.base import HarnessSession

log = logging.getLogger(__name__)

Opener = Callable[[], Awaitable[HarnessSession]]


@dataclass
class _Entry:
    session: HarnessSession
    config: Hashable  # what it was opened with (agent, env): another config reopens it
    last_used: float
    busy: bool = False


class LiveHarnesses:
    def __init__(self, *, idle_timeout: float, max_live: int, clock: Clock = SYSTEM) -> None:
        self.idle_timeout = idle_timeout
        self.max_live = max_live
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._lock = asyncio.Lock()  # guards the set of entries, never held while opening
        self._session_locks: dict[str, asyncio.Lock] = {}
        self._opening = 0
        self._sweeper: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._entries)

    def is_live(self, session_id: str) -> bool:
        return session_id in self._entries

    async def acquire(self, session_id: str, config: Hashable, opener: Opener) -> HarnessSession:
        """The session's warm harness opened with `config` (the agent's name, and whatever
        else needs a fresh process when it changes), opening (or re-opening) it when needed.

        Opening a process takes a while, so it happens under the session's own lock only:
        other sessions' warm turns never wait for it."""
        async with self._session_locks.setdefault(session_id, asyncio.Lock()):
            entry = self._entries.get(session_id)
            if entry is not None and entry.config != config:
                # A handoff (or new env vars): the conversation continues under the new
                # configuration, resumed from the harness's transcript.
                await self.discard(session_id)
                entry = None
            if entry is None:
                async with self._lock:
                    await self._make_room()
                    self._opening += 1
                try:
                    entry = _Entry(await opener(), config, self._clock.monotonic())
                finally:
                    self._opening -= 1
                self._entries[session_id] = entry
            entry.busy = True
            entry.last_used = self._clock.monotonic()
            return entry.session

    async def adopt(self, session_id: str, config: Hashable, session: HarnessSession) -> bool:
        """Take a harness opened elsewhere (a pooled one) as the session's warm harness, idle
        until its first turn. False when there is no room for it (the caller keeps it)."""
        async with self._lock:
            if session_id in self._entries:
                return False
            try:
                await self._make_room()
            except HarnessCapacity:
                return False
            self._entries[session_id] = _Entry(session, config, self._clock.monotonic())
            return True

    def ready(self, session_id: str, config: Hashable) -> bool:
        """Whether the session has an idle warm harness a turn with `config` would take."""
        entry = self._entries.get(session_id)
        return entry is not None and not entry.busy and entry.config == config

    def release(self, session_id: str) -> None:
        entry = self._entries.get(session_id)
        if entry is not None:
            entry.busy = False
            entry.last_used = self._clock.monotonic()

    async def discard(self, session_id: str, *, force: bool = False) -> None:
        """Close a session's harness now (after a crash, a handoff, or when the session ends);
        `force` kills it and its tools instead of letting it finish what it was doing."""
        async with self._lock:
            entry = self._entries.pop(session_id, None)
        if entry is not None:
            await entry.session.close(force=force)
        self._forget_lock(session_id)

    async def close_idle(self, session_id: str) -> None:
        """Close the session's harness unless a turn is using it (a stateless call ended; a
        call that went on with the session meanwhile keeps it)."""
        async with self._lock:
            entry = self._entries.get(session_id)
            if entry is None or entry.busy:
                return
            del self._entries[session_id]
        await entry.session.close()
        self._forget_lock(session_id)

    def _forget_lock(self, session_id: str) -> None:
        lock = self._session_locks.get(session_id)
        if lock is not None and not lock.locked() and session_id not in self._entries:
            del self._session_locks[session_id]

    def admit(self, session_id: str) -> None:
        """Refuse a turn up front (503 `harness_capacity`) when it would need a harness and
        every slot is busy; a turn admitted here can still lose a race for the last slot."""
        if session_id not in self._entries and self._full() and not self._idle():
            raise _capacity()

    def _full(self) -> bool:
        return len(self._entries) + self._opening >= self.max_live

    def _idle(self) -> list[tuple[float, str]]:
        return [(e.last_used, sid) for sid, e in self._entries.items() if not e.busy]

    async def _make_room(self) -> None:
        while self._full():
            idle = self._idle()
            if not idle:
                raise _capacity()
            await self._close(min(idle)[1])

    async def _close(self, session_id: str) -> None:
        entry = self._entries.pop(session_id, None)
        if entry is not None:
            await entry.session.close()
        self._forget_lock(session_id)

    async def evict_idle(self) -> list[str]:
        async with self._lock:
            cutoff = self._clock.monotonic() - self.idle_timeout
            stale = [sid for sid, e in self._entries.items() if not e.busy and e.last_used < cutoff]
            for sid in stale:
                await self._close(sid)
        if stale:
            log.info("evicted %d idle harness session(s)", len(stale))
        return stale

    @property
    def sweep_period(self) -> float:
        return max(0.5, min(30.0, self.idle_timeout / 4))

    def start(self) -> None:
        """Evict idle harnesses every `sweep_period` on the runtime's clock."""

        async def sweep() -> None:
            while True:
                await self._clock.sleep(self.sweep_period)
                try:
                    await self.evict_idle()
                except Exception:
                    log.exception("idle eviction failed")

        self._sweeper = asyncio.create_task(sweep())

    async def close_all(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        async with self._lock:
            for sid in list(self._entries):
                await self._close(sid)


def _capacity() -> HarnessCapacity:
    return HarnessCapacity(
        "every harness slot is busy running a turn; retry shortly", retry_after=2
    )
