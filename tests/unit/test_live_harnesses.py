"""The live-harness registry: reuse, idle eviction, the cap, handoff reopen, capacity errors."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest

from karta.app.agents import AgentDefinition
from karta.core.errors import HarnessCapacity
from karta.dataplane.runtime.live import LiveHarnesses
from karta.testing import FakeClock


@dataclass
class FakeSession:
    agent: AgentDefinition
    harness_session_id: str = "h"
    closed: bool = False
    log: list[str] = field(default_factory=list)

    async def close(self, *, force: bool = False) -> None:
        self.closed = True


def opener(name: str, opened: list[FakeSession]):  # type: ignore[no-untyped-def]
    async def open_() -> FakeSession:
        session = FakeSession(AgentDefinition(name))
        opened.append(session)
        return session

    return open_


async def test_warm_sessions_are_reused_and_idle_ones_evicted():
    clock, opened = FakeClock(), []
    live = LiveHarnesses(idle_timeout=10, max_live=4, clock=clock)
    first = await live.acquire("s1", "a", opener("a", opened))
    live.release("s1")
    assert await live.acquire("s1", "a", opener("a", opened)) is first
    live.release("s1")
    clock.advance(5 - clock.monotonic())
    assert await live.evict_idle() == []
    clock.advance(11 - clock.monotonic())
    assert await live.evict_idle() == ["s1"]
    assert first.closed and not live.is_live("s1")


async def test_busy_sessions_are_never_evicted():
    clock, opened = FakeClock(), []
    live = LiveHarnesses(idle_timeout=1, max_live=4, clock=clock)
    await live.acquire("s1", "a", opener("a", opened))
    clock.advance(100 - clock.monotonic())
    assert await live.evict_idle() == []


async def test_the_cap_closes_the_least_recently_used_idle_session():
    clock, opened = FakeClock(), []
    live = LiveHarnesses(idle_timeout=100, max_live=2, clock=clock)
    for sid, at in (("old", 1), ("new", 2)):
        clock.advance(at - clock.monotonic())
        await live.acquire(sid, "a", opener("a", opened))
        live.release(sid)
    clock.advance(3 - clock.monotonic())
    await live.acquire("third", "a", opener("a", opened))
    assert opened[0].closed and not opened[1].closed
    assert len(live) == 2


async def test_all_busy_means_capacity_error():
    live = LiveHarnesses(idle_timeout=100, max_live=1)
    await live.acquire("s1", "a", opener("a", []))
    with pytest.raises(HarnessCapacity):
        await live.acquire("s2", "a", opener("a", []))


async def test_handoff_reopens_with_the_new_agent():
    opened: list[FakeSession] = []
    live = LiveHarnesses(idle_timeout=100, max_live=2)
    await live.acquire("s1", "a", opener("a", opened))
    live.release("s1")
    second = await live.acquire("s1", "b", opener("b", opened))
    assert opened[0].closed and second.agent.name == "b"


async def test_a_slow_open_does_not_block_other_sessions():
    gate = asyncio.Event()
    live = LiveHarnesses(idle_timeout=100, max_live=4)
    await live.acquire("warm", "a", opener("a", []))
    live.release("warm")

    async def slow() -> FakeSession:
        await gate.wait()
        return FakeSession(AgentDefinition("a"))

    pending = asyncio.create_task(live.acquire("cold", "a", slow))
    await asyncio.sleep(0)
    warm = await asyncio.wait_for(live.acquire("warm", "a", opener("a", [])), 1)
    assert warm.agent.name == "a"
    gate.set()
    await pending
