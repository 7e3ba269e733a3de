"""FakeClock: deadlines count from the call, whenever its internals first get to run."""

from __future__ import annotations

import asyncio

import pytest

from karta.testing import FakeClock


async def test_a_wait_for_deadline_counts_from_the_call():
    clock = FakeClock()
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    waiting = asyncio.ensure_future(clock.wait_for(never, 10))
    await asyncio.sleep(0)  # wait_for is running: suspended inside, its deadline set
    clock.advance(10)
    done, _ = await asyncio.wait({waiting}, timeout=5)  # a guard: it ends at the next tick
    assert done, "advance(10) did not time out a wait_for(…, 10)"
    with pytest.raises(TimeoutError):
        waiting.result()
    assert never.cancelled()


async def test_wait_for_returns_what_finishes_before_the_deadline():
    clock = FakeClock()

    async def answer() -> int:
        return 42

    assert await clock.wait_for(answer(), 10) == 42
    clock.advance(10)  # the spent deadline fires into nothing
