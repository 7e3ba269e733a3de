"""The one clock of the platform: wall time for what is stored (expiry, periods, timestamps),
monotonic time for intervals (caches, breakers, idle eviction), and sleeping.

Every component takes a `Clock` (default `SYSTEM`), so tests drive expiry, budget periods,
approval expiry and cache windows with `karta.testing.FakeClock` instead of real time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Protocol, TypeVar

T = TypeVar("T")


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (for intervals only)."""
        ...

    async def sleep(self, seconds: float) -> None: ...

    async def wait_for(self, awaitable: Awaitable[T], seconds: float) -> T:
        """`awaitable`'s result, or TimeoutError once `seconds` have passed."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def wait_for(self, awaitable: Awaitable[T], seconds: float) -> T:
        # A deadline on the waiting task itself: no task per wait (a thousand streams of one
        # session each wait here between events).
        async with asyncio.timeout(seconds):
            return await awaitable


SYSTEM: Clock = SystemClock()


def utcnow() -> datetime:
    """The system's wall time (for column defaults, which no component's clock reaches)."""
    return datetime.now(UTC)
