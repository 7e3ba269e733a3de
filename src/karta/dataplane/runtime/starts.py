"""Admission control for harness starts: a process start costs most of a second of CPU, so
when many sessions arrive together they take turns instead of all slowing each other down.

At most `limit` starts run at once (default: the core count). A turn that needs a start when
all slots are taken waits in a FIFO queue and is told its place (`on_queued(position)`, 1 =
next) whenever it changes. Background starts (the pool's refills) come last: one at a time at
most, and only while no turn is waiting.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

Queued = Callable[[int], Awaitable[None]]


@dataclass(eq=False)
class _Waiter:
    admitted: bool = False
    changed: asyncio.Event = field(default_factory=asyncio.Event)


class StartGate:
    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)
        self._running = 0
        self._background = 0
        self._queue: deque[_Waiter] = deque()  # turns waiting, first come first served
        self._background_queue: deque[_Waiter] = deque()

    @property
    def waiting(self) -> int:
        """Turns waiting for a start slot."""
        return len(self._queue)

    @property
    def running(self) -> int:
        return self._running

    @asynccontextmanager
    async def start(self, on_queued: Queued | None = None) -> AsyncIterator[None]:
        """Hold a start slot for a turn's harness, waiting in line when none is free."""
        if self._running < self.limit and not self._queue:
            self._running += 1
        else:
            await self._wait(self._queue, on_queued)
        try:
            yield
        finally:
            self._release()

    @asynccontextmanager
    async def background(self) -> AsyncIterator[None]:
        """Hold a start slot for work nobody waits for: after every waiting turn, one at a
        time."""
        if not self._background_free():
            await self._wait(self._background_queue, None)
        else:
            self._running += 1
            self._background += 1
        try:
            yield
        finally:
            self._background -= 1
            self._release()

    def _background_free(self) -> bool:
        return not self._queue and self._background == 0 and self._running < self.limit

    async def _wait(self, queue: deque[_Waiter], on_queued: Queued | None) -> None:
        waiter = _Waiter()
        queue.append(waiter)
        told = 0
        try:
            while not waiter.admitted:
                if on_queued is not None and waiter in queue:
                    position = queue.index(waiter) + 1
                    if position != told:
                        told = position
                        await on_queued(position)
                        continue  # the line may have moved while the caller was told
                await waiter.changed.wait()
                waiter.changed.clear()
        except BaseException:
            if waiter.admitted:
                self._release(background=queue is self._background_queue)
            else:
                queue.remove(waiter)
                self._notify(queue)
            raise

    def _release(self, *, background: bool = False) -> None:
        self._running -= 1
        if background:
            self._background -= 1
        while self._queue and self._running < self.limit:
            self._admit(self._queue.popleft())
        if self._background_queue and self._background_free():
            self._admit(self._background_queue.popleft())
            self._background += 1
        self._notify(self._queue)

    def _admit(self, waiter: _Waiter) -> None:
        self._running += 1
        waiter.admitted = True
        waiter.changed.set()

    def _notify(self, queue: deque[_Waiter]) -> None:
        for waiter in queue:
            waiter.changed.set()
