"""A turn's events, its `done` and its row; one turn at a time per session; the view."""

from __future__ import annotations

import asyncio

import pytest

from karta.core import events as ev
from karta.core.errors import PendingInput, TurnInProgress
from karta.core.turn_fold import TurnOutcome
from karta.dataplane.runtime.turns import TurnHandle, TurnRequest
from karta.testing.fake_harness import Ask, FakeSession, Reason, Say, UseTool, Wait
from tests.runtime.conftest import (
    CALLER,
    GUARD,
    ended_turn,
    is_done,
    is_paused,
    of_type,
    run_turn,
    texts,
    until,
)

USAGE = {"input_tokens": 12, "output_tokens": 5, "total_tokens": 17}


async def test_a_turn_streams_its_events_and_ends_with_done_and_usage(runtime, session, fake):
    fake.enqueue(
        Reason("They want a roast."),
        Say("Our dark roast ", chunk=5, part_id="p1"),
        UseTool("Read", {"file_path": "menu.md"}, output="espresso"),
        Say("is espresso."),
        usage=USAGE,
    )
    turn = await session.send(TurnRequest("What is dark?", thinking=True))
    events = await until(session, turn.after, is_done(turn))

    assert [e.part["text"] for e in events if e.part.get("id") == "p1"] == [
        "Our d",
        "ark r",
        "oast ",
    ]
    assert [e.part["state"]["status"] for e in of_type(events, ev.TOOL_USE)] == [
        "running",
        "completed",
    ]
    assert of_type(events, ev.REASONING)[0].part["text"] == "They want a roast."
    assert all(e.turn_id == turn.turn_id for e in events)
    assert [e.type for e in events].count(ev.DONE) == 1
    done = events[-1]
    assert done.data == {"status": "completed", "usage": USAGE}
    outcome = TurnOutcome.of(events)
    assert outcome.text == "Our dark roast \n\nis espresso."
    assert outcome.tokens == (12, 5)
    row = await ended_turn(runtime, turn.turn_id)
    assert (row.status, row.usage, row.agent) == ("completed", USAGE, "triage")
    [received] = fake.received
    assert (received.text, received.agent, received.thinking) == ("What is dark?", "triage", True)


async def test_the_fake_echoes_when_nothing_is_scripted(session):
    assert texts(await run_turn(session, "hello there")) == "hello there"


async def test_a_message_while_a_turn_runs_is_refused(session, fake):
    release = asyncio.Event()
    fake.enqueue(Say("thinking…"), Wait(until=release), Say("done"))
    turn = await session.send(TurnRequest("slow one"))
    await until(session, turn.after, lambda e: e.type == ev.TEXT)

    with pytest.raises(TurnInProgress) as refused:
        await session.send(TurnRequest("are you there?"))
    assert refused.value.status == 409
    view = await session.view()
    assert view.turn_running and view.pending_input is None

    release.set()
    events = await until(session, turn.after, is_done(turn))
    assert texts(events) == "thinking…done"
    assert [r.text for r in fake.received] == ["slow one"]  # the refused one never arrived
    assert not (await session.view()).turn_running
    assert texts(await run_turn(session, "now?")) == "now?"


async def test_of_two_messages_sent_at_once_exactly_one_starts_a_turn(session, fake):
    release = asyncio.Event()
    fake.enqueue(Wait(until=release))
    results = await asyncio.gather(
        session.send(TurnRequest("one")),
        session.send(TurnRequest("two")),
        return_exceptions=True,
    )
    release.set()  # before asserting: two turns let in must fail the test, not hang its teardown
    started = [r for r in results if isinstance(r, TurnHandle)]
    refused = [r for r in results if isinstance(r, TurnInProgress)]
    assert (len(started), len(refused)) == (1, 1), results
    await until(session, started[0].after, is_done(started[0]))
    assert [r.text for r in fake.received] == [started[0].user_message["text"]]


async def test_a_slow_turn_holds_up_its_own_session_only(runtime, session, fake):
    release = asyncio.Event()
    fake.enqueue(Wait(until=release), session=session.id)
    slow = await session.send(TurnRequest("slow"))
    other, _ = await runtime.create_session(CALLER, {})
    assert texts(await run_turn(other, "quick")) == "quick"
    assert (await session.view()).turn_running
    release.set()
    assert (await until(session, slow.after, is_done(slow)))[-1].data["status"] == "completed"


async def test_a_message_while_an_approval_is_pending_is_refused(session, fake):
    fake.enqueue(Ask("Write", {"file_path": "notes/1.md"}, output="ok"))
    turn = await session.send(TurnRequest("write"))
    paused = await until(session, turn.after, is_paused(turn))
    request_id = paused[-1].data["request_id"]

    with pytest.raises(PendingInput) as refused:
        await session.send(TurnRequest("and another thing"))
    assert refused.value.status == 409
    assert refused.value.extra == {"request_id": request_id}
    view = await session.view()
    assert view.turn_running
    assert view.pending_input is not None
    assert view.pending_input.request_id == request_id
    assert view.pending_input.tool == "Write"
    assert view.pending_input.target == "notes/1.md"


async def test_the_view_follows_the_session(session):
    view = await session.view()
    assert (view.status, view.current_agent, view.turn_running) == ("active", "triage", False)
    assert view.last_event_seq == 0
    events = await run_turn(session, "hi")
    view = await session.view()
    assert view.last_event_seq == events[-1].seq
    assert not view.turn_running and view.pending_input is None


async def test_a_warm_harness_has_the_message_before_the_turns_row_is_written(
    runtime, session, fake, monkeypatch
):
    """The row's write runs on the loop's thread; for a warm harness it waits until the
    harness has the message, so it never delays the message. A cold start is not waited for:
    its row is written while the process starts."""
    heard_first: list[bool] = []
    start_turn = runtime.repo.start_turn

    async def watched(*args, **kwargs):  # type: ignore[no-untyped-def]
        heard_first.append(len(fake.received) > len(heard_first))
        await start_turn(*args, **kwargs)

    monkeypatch.setattr(runtime.repo, "start_turn", watched)
    await run_turn(session, "first: the harness is still to be started")
    await run_turn(session, "second: the harness is warm")
    assert heard_first == [False, True]
    assert [r.text for r in fake.received] == [
        "first: the harness is still to be started",
        "second: the harness is warm",
    ]


async def test_a_warm_harness_slow_to_take_the_message_holds_the_turn_up_only_briefly(
    runtime, session, fake, monkeypatch
):
    """A harness stuck on its input does not hold the session's turn lock for good: the row
    is written after `HANDOVER_WAIT` (here 50 ms), and the turn goes on as the harness does."""
    await run_turn(session, "warm it up")
    monkeypatch.setattr("karta.dataplane.runtime.pipeline.HANDOVER_WAIT", 0.05)
    release = asyncio.Event()
    playing = FakeSession.turn

    async def slow_to_listen(self, ctx):  # type: ignore[no-untyped-def]
        await release.wait()
        async for event in playing(self, ctx):
            yield event

    monkeypatch.setattr(FakeSession, "turn", slow_to_listen)
    async with asyncio.timeout(GUARD):
        turn = await session.send(TurnRequest("are you there?"))
    assert fake.received[-1].text == "warm it up", "sent before the harness took it"
    release.set()
    events = await until(session, turn.after, is_done(turn))
    assert fake.received[-1].text == "are you there?"
    assert of_type(events, ev.DONE)[0].data["status"] == "completed"
