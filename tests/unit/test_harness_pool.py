"""The pool's policy on its own: size follows arrivals within bounds, unused keys shrink to
nothing, and a release that is no longer active takes its processes with it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from karta.app import load_app
from karta.dataplane.principal import Principal
from karta.dataplane.runtime.apps import Pin
from karta.dataplane.runtime.pool import Demand, HarnessPool, Pooled, pool_key
from karta.dataplane.runtime.starts import StartGate
from karta.testing import FakeClock
from tests.conftest import SUPPORT_BOT

APP = load_app(SUPPORT_BOT)
CALLER = Principal(kind="api_key", organization_id=1, project_id=5, project_slug="bot")
V1, V2 = Pin(1, "a" * 64), Pin(2, "b" * 64)


@dataclass
class Process:
    name: str
    closed: bool = False

    async def close(self, *, force: bool = False) -> None:
        self.closed = True


class Harnesses:
    """What the pool starts and retires, and which release is active."""

    def __init__(self) -> None:
        self.started: list[Pooled] = []
        self.retired: list[Pooled] = []
        self.active = V1

    async def start(self, demand: Demand) -> Pooled:
        pooled = Pooled(f"sess_{len(self.started)}", Process("p"), None, demand.key)  # type: ignore[arg-type]
        self.started.append(pooled)
        return pooled

    async def retire(self, pooled: Pooled) -> None:
        self.retired.append(pooled)

    async def pin(self, principal: Principal) -> Pin:
        return self.active


def demand(pin: Pin = V1) -> Demand:
    agent = APP.default_agent
    return Demand(pool_key(5, pin, APP, agent.name, {}), pin, APP, agent, {}, CALLER)


def pool_of(harnesses: Harnesses, clock: FakeClock, **bounds: int) -> HarnessPool:
    return HarnessPool(
        minimum=bounds.get("minimum", 0),
        maximum=bounds.get("maximum", 4),
        window=60,
        keep=600,
        clock=clock,
        gate=StartGate(2),
        start=harnesses.start,
        retire=harnesses.retire,
        active=harnesses.pin,
        pause=bounds.get("pause", 0),
    )


async def settle(pool: HarnessPool, size: int) -> None:
    async with asyncio.timeout(5):
        while pool.size() != size:  # noqa: ASYNC110
            await asyncio.sleep(0)
    for _ in range(5):
        await asyncio.sleep(0)


async def test_the_size_follows_recent_arrivals_within_bounds():
    clock, harnesses = FakeClock(), Harnesses()
    pool = pool_of(harnesses, clock, minimum=1, maximum=3)
    pool.start()
    key = demand().key
    for _ in range(5):
        pool.arrived(demand())
    assert pool.target(key) == 3  # five arrivals in the window, at most three
    await settle(pool, 3)
    clock.advance(61)  # the window passed without arrivals: back to the minimum
    assert pool.target(key) == 1
    await pool.maintain()
    await settle(pool, 1)
    assert len(harnesses.retired) == 2
    clock.advance(600)  # nobody asked for this key for `keep`: it gets nothing
    await pool.maintain()
    await settle(pool, 0)
    assert pool.target(key) == 0
    await pool.close()


async def test_a_release_no_longer_active_is_retired():
    clock, harnesses = FakeClock(), Harnesses()
    pool = pool_of(harnesses, clock)
    pool.start()
    pool.arrived(demand(V1))
    await settle(pool, 1)
    harnesses.active = V2  # activated elsewhere: the pool notices on its next round
    await pool.maintain()
    await settle(pool, 0)
    assert harnesses.retired == harnesses.started
    assert pool.take(demand(V1).key) is None
    await pool.close()


async def test_a_session_on_the_new_release_retires_the_old_ones_at_once():
    clock, harnesses = FakeClock(), Harnesses()
    pool = pool_of(harnesses, clock)
    pool.start()
    pool.arrived(demand(V1))
    await settle(pool, 1)
    harnesses.active = V2
    pool.arrived(demand(V2))
    assert pool.size(demand(V1).key) == 0
    await settle(pool, 1)
    assert pool.size(demand(V2).key) == 1 and len(harnesses.retired) == 1
    await pool.close()
    assert len(harnesses.retired) == 2  # closing the pool retires what it held


async def test_taking_hands_each_process_out_once():
    clock, harnesses = FakeClock(), Harnesses()
    pool = pool_of(harnesses, clock, maximum=1)
    pool.start()
    pool.arrived(demand())
    await settle(pool, 1)
    key = demand().key
    first = pool.take(key)
    assert first is not None and pool.take(key) is None
    await pool.close()


async def test_a_refill_waits_until_the_adopting_sessions_first_turn_had_its_moment():
    clock, harnesses = FakeClock(), Harnesses()
    pool = pool_of(harnesses, clock, maximum=1, pause=1)
    pool.start()
    pool.arrived(demand())
    await settle(pool, 1)
    assert pool.take(demand().key) is not None
    await settle(pool, 0)
    assert len(harnesses.started) == 1  # not yet: the session that took it goes first
    clock.advance(1)
    await settle(pool, 1)
    assert len(harnesses.started) == 2
    await pool.close()
