"""The FakeHarness on its own: its script queues, its steps, its records and its transcript."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from karta.app import load_app
from karta.core import events as ev
from karta.core.events import Event
from karta.dataplane.harness.base import (
    ApprovalAnswer,
    SessionSpec,
    ToolRequest,
    TurnContext,
    Verdict,
)
from karta.testing import FakeClock, FakeHarness
from karta.testing.fake_harness import Ask, Gone, Say, Wait
from tests.conftest import SUPPORT_BOT


def spec(session_id: str = "sess_1", harness_session_id: str = "h-1") -> SessionSpec:
    app = load_app(SUPPORT_BOT)
    return SessionSpec(
        session_id=session_id,
        app=app,
        agent=app.default_agent,
        workspace=Path("/nonexistent/workspace"),
        state_dir=Path("/nonexistent/state"),
        harness_session_id=harness_session_id,
        resume=False,
        model_env={},
    )


async def allow(request: ToolRequest) -> ApprovalAnswer:
    return ApprovalAnswer(Verdict.ALLOW)


async def ignore(event: Event) -> Event:
    return event


def context(text: str, turn_id: str = "turn_1") -> TurnContext:
    return TurnContext(turn_id=turn_id, text=text, approvals=allow, emit=ignore)


async def play(fake: FakeHarness, text: str, session_id: str = "sess_1") -> list[Event]:
    session = await fake.open(spec(session_id))
    return [event async for event in session.turn(context(text))]


def said(events: list[Event]) -> str:
    return "".join(e.part["text"] for e in events if e.type == ev.TEXT)


async def test_a_sessions_own_queue_comes_first_then_the_shared_one_then_an_echo():
    fake = FakeHarness()
    fake.enqueue(Say("shared"))
    fake.enqueue(Say("mine"), session="sess_1")
    assert said(await play(fake, "a")) == "mine"
    assert said(await play(fake, "b", session_id="sess_2")) == "shared"
    assert said(await play(fake, "echo me")) == "echo me"
    assert [r.text for r in fake.received] == ["a", "b", "echo me"]


async def test_gone_is_a_turn_of_its_own():
    with pytest.raises(ValueError):
        FakeHarness().enqueue(Gone(), Say("after"))


async def test_the_transcript_is_what_the_harness_took_and_said():
    fake = FakeHarness(FakeClock())
    fake.enqueue(Say("Sure."), Ask("Write", {"file_path": "a.md"}, output="ok"))
    assert not fake.has_transcript(spec())
    await play(fake, "write a.md")

    assert fake.has_transcript(spec())
    assert not fake.has_transcript(spec(harness_session_id="h-other"))
    user, assistant = await fake.transcript(spec())
    assert (user["role"], user["parts"]) == ("user", [{"type": "text", "text": "write a.md"}])
    assert assistant["role"] == "assistant"
    assert assistant["parts"] == [
        {"type": "text", "text": "Sure."},
        {
            "type": "tool",
            "id": "tool-turn_1-1",
            "tool": "Write",
            "input": {"file_path": "a.md"},
            "output": "ok",
            "status": "completed",
        },
    ]
    assert assistant["created_at"] == "2026-01-01T00:00:00+00:00"


async def test_a_wait_with_a_delay_ends_when_the_clock_passes_it():
    clock = FakeClock()
    fake = FakeHarness(clock)
    fake.enqueue(Say("before"), Wait(seconds=30), Say("after"))
    session = await fake.open(spec())
    turn = session.turn(context("hi"))
    assert said([await anext(turn)]) == "before"

    waiting = asyncio.ensure_future(anext(turn))
    await asyncio.sleep(0)  # the turn runs into the wait and starts its delay
    clock.advance(29)
    for _ in range(10):  # ample ticks for a wait that had ended to come back
        await asyncio.sleep(0)
    assert not waiting.done()
    clock.advance(1)
    assert said([await waiting]) == "after"
    assert (await anext(turn)).data["status"] == "completed"
