"""Interrupting a turn: while it runs, while it waits for a decision, and with nothing running."""

from __future__ import annotations

import pytest

from karta.core import events as ev
from karta.core.errors import NoTurnRunning, SessionEnded
from karta.dataplane.runtime.turns import TurnRequest
from karta.testing.fake_harness import Ask, Say, Wait
from tests.runtime.conftest import ended_turn, is_done, is_paused, run_turn, texts, until


async def test_interrupting_a_running_turn_cancels_it_and_the_session_goes_on(
    runtime, session, fake
):
    fake.enqueue(Say("Let me look…"), Wait(seconds=60), Say("never said"))
    turn = await session.send(TurnRequest("take your time"))
    started = await until(session, turn.after, lambda e: e.type == ev.TEXT)

    turn_id, before = await session.interrupt()
    assert turn_id == turn.turn_id and before >= started[-1].seq
    events = await until(session, turn.after, is_done(turn))

    assert events[-1].data["status"] == "cancelled"
    assert "never said" not in texts(events)
    assert fake.interrupted == [session.id]
    assert (await ended_turn(runtime, turn.turn_id)).status == "cancelled"
    assert not (await session.view()).turn_running
    assert fake.closed == []  # it stopped when asked: the process stays warm
    assert texts(await run_turn(session, "still there?")) == "still there?"
    assert len(fake.opened) == 1


async def test_interrupting_a_turn_paused_on_an_approval_aborts_the_approval(
    runtime, session, fake
):
    fake.enqueue(Ask("Write", {"file_path": "a.md"}, output="written"), Say("never said"))
    turn = await session.send(TurnRequest("write"))
    paused = await until(session, turn.after, is_paused(turn))
    request_id = paused[-1].data["request_id"]

    await session.interrupt()
    events = await until(session, turn.after, is_done(turn))

    assert events[-1].data["status"] == "cancelled"
    assert "never said" not in texts(events)
    assert fake.answers[-1].verdict == "deny"
    approval = await runtime.repo.approval(request_id)
    assert approval is not None and approval.status == "aborted"
    assert (await ended_turn(runtime, turn.turn_id)).status == "cancelled"
    view = await session.view()
    assert view.pending_input is None and not view.turn_running


async def test_interrupting_with_nothing_running_is_refused(session):
    with pytest.raises(NoTurnRunning) as refused:
        await session.interrupt()
    assert refused.value.status == 409
    await run_turn(session, "hi")
    with pytest.raises(NoTurnRunning):
        await session.interrupt()


async def test_ending_a_session_stops_its_paused_turn_and_closes_its_harness(
    runtime, session, fake
):
    fake.enqueue(Ask("Write", {"file_path": "a.md"}))
    turn = await session.send(TurnRequest("write"))
    paused = await until(session, turn.after, is_paused(turn))

    await session.end()

    events = await until(session, turn.after, is_done(turn))
    assert events[-1].data["status"] == "cancelled"
    approval = await runtime.repo.approval(paused[-1].data["request_id"])
    assert approval is not None and approval.status == "aborted"
    assert (await ended_turn(runtime, turn.turn_id)).status == "cancelled"
    assert fake.killed == [session.id]
    view = await session.view()
    assert (view.status, view.turn_running, view.pending_input) == ("ended", False, None)
    with pytest.raises(SessionEnded):
        await session.send(TurnRequest("hello?"))
