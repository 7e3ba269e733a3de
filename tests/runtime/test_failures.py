"""A harness found dead before the message is replaced transparently; one that crashes mid-turn
fails the turn, and the next turn resumes the conversation on a fresh one."""

from __future__ import annotations

import asyncio

import pytest

from karta.core import events as ev
from karta.dataplane.runtime.turns import TurnRequest
from karta.testing.fake_harness import Crash, Gone, Say
from tests.runtime.conftest import ended_turn, is_done, of_type, run_turn, texts, until


async def test_a_harness_that_died_while_idle_is_replaced_and_the_turn_completes(
    runtime, session, fake
):
    await run_turn(session, "hi")
    fake.enqueue(Gone())
    fake.enqueue(Say("Hello from a fresh one."))
    events = await run_turn(session, "again")

    assert texts(events) == "Hello from a fresh one."
    assert of_type(events, ev.ERROR) == []
    assert events[-1].data["status"] == "completed"
    assert (await ended_turn(runtime, events[-1].turn_id)).status == "completed"
    assert [spec.resume for spec in fake.opened] == [False, True]  # the fresh one resumed
    assert fake.closed == [session.id]  # the dead one was discarded
    assert fake.killed == []  # gently: it had not taken the message
    assert [r.text for r in fake.received] == ["hi", "again"]  # sent once, to the fresh one


async def test_a_harness_gone_at_its_first_turn_is_replaced_by_a_new_conversation(session, fake):
    fake.enqueue(Gone())
    events = await run_turn(session, "hi")
    assert texts(events) == "hi"
    assert [spec.resume for spec in fake.opened] == [False, False]  # nothing to resume yet


async def test_a_harness_gone_twice_fails_the_turn(session, fake):
    fake.enqueue(Gone())
    fake.enqueue(Gone())
    events = await run_turn(session, "hi")

    assert [e.data["code"] for e in of_type(events, ev.ERROR)] == ["harness_crashed"]
    assert events[-1].data["status"] == "failed"
    assert len(fake.opened) == 2  # retried once, not more
    assert fake.received == []


async def test_a_crash_mid_turn_fails_it_and_the_next_turn_resumes_on_a_fresh_harness(
    runtime, session, fake
):
    fake.enqueue(Say("Half an ans"), Crash("segfault"), Say("never said"))
    events = await run_turn(session, "hi")

    [error] = of_type(events, ev.ERROR)
    assert error.data["code"] == "harness_crashed" and "segfault" in error.data["details"]
    assert texts(events) == "Half an ans"
    assert events[-1].data["status"] == "failed"
    assert (await ended_turn(runtime, events[-1].turn_id)).status == "failed"
    assert fake.killed == [session.id]  # a crashed harness is killed, not asked to finish

    fake.enqueue(Say("Where were we?"))
    assert texts(await run_turn(session, "again")) == "Where were we?"
    first, second = fake.opened
    assert (first.resume, second.resume) == (False, True)
    assert first.harness_session_id == second.harness_session_id
    transcript = await session.transcript()
    assert [m["role"] for m in transcript] == ["user", "assistant", "user", "assistant"]
    assert transcript[1]["parts"] == [{"type": "text", "text": "Half an ans"}]


async def test_a_turn_whose_row_cannot_be_stored_is_dropped_and_the_session_goes_on(
    runtime, session, fake, monkeypatch
):
    await run_turn(session, "hi")
    real = runtime.repo.start_turn

    async def broken(*args: object, **kwargs: object) -> None:
        for _ in range(50):  # the harness takes the message meanwhile
            await asyncio.sleep(0)
        raise OSError("disk I/O error")

    monkeypatch.setattr(runtime.repo, "start_turn", broken)
    fake.enqueue(Say("never logged"))
    before = await session.last_seq()
    with pytest.raises(OSError):
        await session.send(TurnRequest("lost"))
    assert await session.read(before) == [], "nothing of the dropped turn is logged"
    assert runtime.pipeline.running(session.id) is None
    assert [r.text for r in fake.received] == ["hi", "lost"]
    assert fake.killed == [session.id], "its harness heard a message nobody sees answered"

    monkeypatch.setattr(runtime.repo, "start_turn", real)
    events = await run_turn(session, "again")
    assert texts(events) == "again" and events[-1].data["status"] == "completed"


async def test_the_turns_events_follow_its_row_and_opening_even_when_the_row_is_slow(
    runtime, session, fake, monkeypatch
):
    """The harness hears the message while the row is written; what it says waits."""
    real = runtime.repo.start_turn
    stored = asyncio.Event()

    async def slow(*args: object, **kwargs: object) -> None:
        for _ in range(50):  # the harness answers meanwhile
            await asyncio.sleep(0)
        await real(*args, **kwargs)
        stored.set()

    monkeypatch.setattr(runtime.repo, "start_turn", slow)
    fake.enqueue(Say("Hello, Ada."))
    turn = await session.send(TurnRequest("hi", participant_name="ada"))
    events = await until(session, turn.after, is_done(turn))
    assert stored.is_set()
    assert events[0].type == ev.MESSAGE and events[0].data["text"] == "hi"
    assert texts(events) == "Hello, Ada." and events[-1].data["status"] == "completed"
    assert [e.seq for e in events] == list(range(turn.after + 1, turn.after + 1 + len(events)))
    assert (await ended_turn(runtime, turn.turn_id)).status == "completed"
