"""A clock that moves only when a test says so: `advance(seconds)` wakes every sleeper and
times out every `wait_for` whose deadline has passed, so expiry is tested in milliseconds."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

T = TypeVar("T")


class FakeClock:
    def __init__(self, start: datetime | None = None) -> None:
        self._start = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._elapsed = 0.0
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self._elapsed)

    def monotonic(self) -> float:
        return self._elapsed

    def advance(self, seconds: float) -> None:
        self._elapsed += seconds
        due = [(t, f) for t, f in self._sleepers if t <= self._elapsed]
        self._sleepers = [(t, f) for t, f in self._sleepers if t > self._elapsed]
        for _, future in due:
            if not future.done():
                future.set_result(None)

    def _timer(self, seconds: float) -> asyncio.Future[None]:
        """A future that `advance` resolves once `seconds` from now have passed. Registered
        when called, so a deadline counts from the call even before anything awaits it."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if seconds <= 0:
            future.set_result(None)
        else:
            self._sleepers.append((self._elapsed + seconds, future))
        return future

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        await self._timer(seconds)

    async def wait_for(self, awaitable: Awaitable[T], seconds: float) -> T:
        task = asyncio.ensure_future(awaitable)
        timer = self._timer(seconds)
        first: set[asyncio.Future[Any]] = {task, timer}
        try:
            await asyncio.wait(first, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            task.cancel()
            raise
        finally:
            timer.cancel()
        if task.done():
            return task.result()
        task.cancel()
        raise TimeoutError
