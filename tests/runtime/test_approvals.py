"""Approvals pause the turn: decided once, for the session, denied, expired (on the fake clock)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from karta.core import events as ev
from karta.core.errors import InputNotPending
from karta.dataplane.runtime.handle import SessionHandle
from karta.dataplane.runtime.lifecycle import Decision
from karta.dataplane.runtime.service import Runtime
from karta.dataplane.runtime.turns import TurnHandle, TurnRequest
from karta.testing.fake_harness import Ask, Say
from tests.runtime.conftest import (
    ended_turn,
    is_done,
    is_paused,
    of_type,
    run_turn,
    texts,
    turn_row,
    until,
)

WRITE = {"file_path": "notes/1.md", "content": "hi"}


async def paused_turn(session: SessionHandle, text: str) -> tuple[TurnHandle, str, int]:
    """Send a message that asks permission; returns the turn, the request id and the seq of its
    `input_required`."""
    turn = await session.send(TurnRequest(text))
    paused = await until(session, turn.after, is_paused(turn))
    assert paused[-1].seq is not None
    return turn, paused[-1].data["request_id"], paused[-1].seq


async def status_of(runtime: Runtime, request_id: str) -> str:
    row = await runtime.repo.approval(request_id)
    assert row is not None
    return row.status


async def test_approved_once_runs_the_tool_and_the_next_turn_asks_again(runtime, session, fake):
    fake.enqueue(Ask("Write", WRITE, output="written"), Say("Saved."))
    turn, request_id, seq = await paused_turn(session, "write it")
    assert (await turn_row(runtime, turn.turn_id)).status == "awaiting_input"

    assert await session.decide(request_id, Decision.APPROVE_ONCE) == (turn.turn_id, seq)
    rest = await until(session, seq, is_done(turn))

    tool = of_type(rest, ev.TOOL_USE)[-1].part
    assert (tool["state"]["status"], tool["state"]["output"]) == ("completed", "written")
    assert texts(rest) == "Saved." and rest[-1].data["status"] == "completed"
    assert await status_of(runtime, request_id) == "approved_once"
    assert fake.answers[-1].verdict == "allow"
    assert (await ended_turn(runtime, turn.turn_id)).status == "completed"
    with pytest.raises(InputNotPending):
        await session.decide(request_id, Decision.DENY)

    fake.enqueue(Ask("Write", WRITE))
    _, again, _ = await paused_turn(session, "write it again")
    assert again != request_id


async def test_approved_for_the_session_later_turns_no_longer_ask(runtime, session, fake):
    fake.enqueue(Ask("Write", WRITE, output="written"))
    turn, request_id, seq = await paused_turn(session, "write it")
    await session.decide(request_id, Decision.APPROVE_SESSION)
    await until(session, seq, is_done(turn))
    assert await status_of(runtime, request_id) == "approved_session"
    assert (await session.view()).permission_mode == "approve_session"

    fake.enqueue(Ask("Write", WRITE, output="written again"))
    events = await run_turn(session, "write it again")
    assert of_type(events, ev.INPUT_REQUIRED) == []
    assert of_type(events, ev.TOOL_USE)[-1].part["state"]["output"] == "written again"
    assert [a.verdict for a in fake.answers] == ["allow", "allow"]


async def test_a_denied_tool_fails_and_the_harness_is_told_why(runtime, session, fake):
    fake.enqueue(Ask("Write", WRITE, output="written"))
    turn, request_id, seq = await paused_turn(session, "write it")
    await session.decide(request_id, Decision.DENY)
    rest = await until(session, seq, is_done(turn))

    assert fake.answers[-1].verdict == "deny"
    tool = of_type(rest, ev.TOOL_USE)[-1].part["state"]
    assert tool["status"] == "error"
    assert texts(rest) == tool["output"] == fake.answers[-1].message != ""
    assert rest[-1].data["status"] == "completed"  # a denial is an answer, not a failure
    assert await status_of(runtime, request_id) == "denied"


async def test_an_approval_that_expires_denies_the_tool_and_the_turn_goes_on(
    runtime, session, fake, clock
):
    fake.enqueue(Ask("Write", WRITE, output="written"), Say("Moving on."))
    turn, request_id, seq = await paused_turn(session, "write it")
    ttl = runtime.settings.approval_ttl
    pending = (await session.view()).pending_input
    assert pending is not None
    assert pending.expires_at == (clock.now() + timedelta(seconds=ttl)).isoformat()

    clock.advance(ttl + 1)
    rest = await until(session, seq, is_done(turn))

    expired = of_type(rest, ev.ERROR)
    assert [e.data["code"] for e in expired] == ["approval_expired"]
    assert expired[0].data["request_id"] == request_id
    assert await status_of(runtime, request_id) == "expired"
    assert fake.answers[-1].verdict == "deny"
    assert texts(rest).endswith("Moving on.")
    assert rest[-1].data["status"] == "completed"
    assert (await ended_turn(runtime, turn.turn_id)).status == "completed"
    with pytest.raises(InputNotPending):
        await session.decide(request_id, Decision.APPROVE_ONCE)
