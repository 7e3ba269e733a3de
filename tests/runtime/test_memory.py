"""Memory follows use: idle harnesses are closed on the runtime's clock without any traffic, a
stateless call's harness closes when its turn ends, and live harnesses are bounded."""

from __future__ import annotations

import asyncio

import pytest

from karta.core.errors import HarnessCapacity
from karta.dataplane.runtime.lifecycle import Decision
from karta.dataplane.runtime.turns import TurnRequest
from karta.testing.fake_harness import Ask, Say, Wait
from tests.runtime.conftest import (
    CALLER,
    GUARD,
    is_done,
    is_paused,
    run_turn,
    runtime_on,
    until,
)


async def closed(fake, session_id: str) -> None:  # type: ignore[no-untyped-def]
    """Wait until `fake` closed the session's harness (closing runs in the background)."""
    async with asyncio.timeout(GUARD):
        while session_id not in fake.closed:  # noqa: ASYNC110
            await asyncio.sleep(0)


async def test_an_idle_harness_is_closed_on_the_clock_without_traffic(tmp_path, fake, clock):
    async with runtime_on(tmp_path, fake, clock, idle_timeout=60) as runtime:
        session, _ = await runtime.create_session(CALLER, {})
        await run_turn(session, "hello")
        live = runtime.pipeline.live
        assert live.is_live(session.id)
        clock.advance(30)
        await asyncio.sleep(0)
        assert live.is_live(session.id) and session.id not in fake.closed
        clock.advance(60 + live.sweep_period)  # no request arrives: the sweeper alone acts
        await closed(fake, session.id)
        assert not live.is_live(session.id)
        # The next turn resumes the conversation in a fresh process.
        await run_turn(session, "again")
        assert fake.opened[-1].resume


async def test_a_stateless_call_closes_its_harness_when_the_turn_ends(runtime, fake):
    session, _ = await runtime.create_session(CALLER, {})
    await run_turn(session, "one-off", ephemeral=True)
    await closed(fake, session.id)
    assert not runtime.pipeline.live.is_live(session.id)
    assert session.id not in fake.killed  # a graceful close, not a kill


async def test_a_conversation_keeps_its_harness_warm(runtime, fake):
    session, _ = await runtime.create_session(CALLER, {})
    await run_turn(session, "hello")
    await run_turn(session, "again")
    assert runtime.pipeline.live.is_live(session.id) and fake.closed == []
    assert len(fake.opened) == 1


async def test_a_stateless_turn_paused_for_approval_keeps_its_harness(runtime, fake):
    session, _ = await runtime.create_session(CALLER, {})
    fake.enqueue(Ask("Bash", {"command": "ls"}, output="ok"), Say("Listed."))
    turn = await session.send(TurnRequest("list", ephemeral=True))
    paused = await until(session, turn.after, is_paused(turn))
    assert runtime.pipeline.live.is_live(session.id)
    await session.decide(paused[-1].data["request_id"], Decision.APPROVE_ONCE)
    await until(session, paused[-1].seq or 0, is_done(turn))
    await closed(fake, session.id)


async def test_live_harnesses_are_bounded_with_a_retry_later(tmp_path, fake, clock):
    async with runtime_on(tmp_path, fake, clock, max_live_harnesses=1) as runtime:
        busy, _ = await runtime.create_session(CALLER, {})
        other, _ = await runtime.create_session(CALLER, {})
        gate = asyncio.Event()
        fake.enqueue(Wait(until=gate), Say("done"), session=busy.id)
        turn = await busy.send(TurnRequest("slow"))
        async with asyncio.timeout(GUARD):
            while not runtime.pipeline.live.is_live(busy.id):  # noqa: ASYNC110
                await asyncio.sleep(0)
        with pytest.raises(HarnessCapacity) as refused:
            await other.send(TurnRequest("hi"))
        assert refused.value.status == 503 and refused.value.retry_after > 0
        gate.set()
        await until(busy, turn.after, is_done(turn))
        # Once the busy one is idle, it makes room for the other session.
        await run_turn(other, "hi")
        assert busy.id in fake.closed
