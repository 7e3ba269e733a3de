"""Admission control for harness starts: the limit, FIFO order with positions, cancellation,
and background starts that come after every waiting turn, one at a time."""

from __future__ import annotations

import asyncio

from karta.dataplane.runtime.starts import StartGate


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


class Line:
    """Turns taking a start slot; each records the positions it was told and when it got in."""

    def __init__(self, gate: StartGate) -> None:
        self.gate = gate
        self.order: list[str] = []
        self.told: dict[str, list[int]] = {}
        self.exits: dict[str, asyncio.Event] = {}

    def turn(self, name: str) -> asyncio.Task[None]:
        self.told[name] = []
        self.exits[name] = asyncio.Event()

        async def queued(position: int) -> None:
            self.told[name].append(position)

        async def run() -> None:
            async with self.gate.start(queued):
                self.order.append(name)
                await self.exits[name].wait()

        return asyncio.create_task(run())


async def test_turns_beyond_the_limit_wait_in_order_and_hear_their_place():
    line = Line(StartGate(2))
    tasks = [line.turn(name) for name in "abcde"]
    await settle()
    assert line.order == ["a", "b"] and line.gate.waiting == 3
    assert line.told == {"a": [], "b": [], "c": [1], "d": [2], "e": [3]}
    line.exits["a"].set()
    await settle()
    assert line.order == ["a", "b", "c"]
    assert line.told["d"] == [2, 1] and line.told["e"] == [3, 2]
    for name in "bcde":
        line.exits[name].set()
    await asyncio.gather(*tasks)
    assert line.order == list("abcde") and line.gate.running == 0


async def test_a_waiter_that_gives_up_leaves_the_line():
    line = Line(StartGate(1))
    first, second, third = line.turn("a"), line.turn("b"), line.turn("c")
    await settle()
    second.cancel()
    await settle()
    assert line.told["c"] == [2, 1]
    line.exits["a"].set()
    line.exits["c"].set()
    await asyncio.gather(first, third)
    assert line.order == ["a", "c"] and line.gate.running == 0


async def test_background_starts_wait_for_turns_and_go_one_at_a_time():
    gate = StartGate(2)
    line = Line(gate)
    started: list[str] = []
    release = asyncio.Event()

    async def background(name: str) -> None:
        async with gate.background():
            started.append(name)
            await release.wait()

    first = asyncio.create_task(background("p1"))
    second = asyncio.create_task(background("p2"))
    await settle()
    assert started == ["p1"]  # one at a time, though a slot is free
    turn = line.turn("t")
    await settle()
    assert line.order == ["t"]  # a turn takes the free slot at once
    blocked = line.turn("u")
    await settle()
    assert gate.waiting == 1
    release.set()
    await settle()
    assert line.order == ["t", "u"]  # the waiting turn goes before the second refill
    line.exits["t"].set()
    line.exits["u"].set()
    await asyncio.gather(first, second, turn, blocked)
    assert started == ["p1", "p2"] and gate.running == 0
