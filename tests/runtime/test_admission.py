"""Cold starts take turns: at most `max_starts` harnesses open at once, and first turns beyond
that wait in line with their place on the stream."""

from __future__ import annotations

import asyncio
from typing import Any

from karta.core import events as ev
from karta.dataplane.harness.base import SessionSpec
from karta.dataplane.runtime.turns import TurnRequest
from karta.testing import FakeHarness
from karta.testing.fake_harness import FakeSession
from tests.runtime.conftest import CALLER, GUARD, is_done, runtime_on, texts, until


class SlowStarts(FakeHarness):
    """A fake whose opens wait until the test lets them through."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.gate = asyncio.Event()
        self.starting: list[str] = []

    async def open(self, spec: SessionSpec) -> FakeSession:
        self.starting.append(spec.session_id)
        await self.gate.wait()
        return await super().open(spec)


def positions(events: list[ev.Event]) -> list[int]:
    return [
        e.data["queue_position"]
        for e in events
        if e.type == ev.SYSTEM and e.data.get("subtype") == "status"
    ]


async def test_first_turns_beyond_the_start_limit_wait_in_line_and_say_so(tmp_path, clock):
    fake = SlowStarts(clock)
    async with runtime_on(tmp_path, fake, clock, max_starts=1) as runtime:
        sessions = [(await runtime.create_session(CALLER, {}))[0] for _ in range(3)]
        turns = [await s.send(TurnRequest(f"hi {i}")) for i, s in enumerate(sessions)]
        async with asyncio.timeout(GUARD):
            while runtime.pipeline.starts.waiting < 2:  # noqa: ASYNC110
                await asyncio.sleep(0)
        assert fake.starting == [sessions[0].id]  # one start at a time
        fake.gate.set()
        results = [
            await until(s, t.after, is_done(t)) for s, t in zip(sessions, turns, strict=True)
        ]
        assert [positions(r) for r in results] == [[], [1], [2, 1]]
        assert [texts(r) for r in results] == ["hi 0", "hi 1", "hi 2"]
        assert fake.starting == [s.id for s in sessions]  # first come, first served
        status = next(e for e in results[2] if e.type == ev.SYSTEM)
        assert status.source == "karta" and status.data["status"] == "queued"


async def test_warm_turns_never_wait_for_starts(tmp_path, clock):
    fake = SlowStarts(clock)
    fake.gate.set()
    async with runtime_on(tmp_path, fake, clock, max_starts=1) as runtime:
        warm, _ = await runtime.create_session(CALLER, {})
        first = await warm.send(TurnRequest("warm up"))
        await until(warm, first.after, is_done(first))
        fake.gate.clear()
        cold, _ = await runtime.create_session(CALLER, {})
        await cold.send(TurnRequest("cold"))  # holds the only start slot
        again = await warm.send(TurnRequest("still warm"))
        events = await until(warm, again.after, is_done(again))
        assert texts(events) == "still warm" and positions(events) == []
        fake.gate.set()
