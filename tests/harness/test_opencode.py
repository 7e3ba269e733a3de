"""The OpenCode adapter against the real `opencode serve` and the scripted model."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import replace
from pathlib import Path

import pytest

from karta.core.events import ERROR
from karta.dataplane.harness.base import HarnessFailure, HarnessSession, SessionSpec
from karta.dataplane.harness.opencode import OpenCodeHarness, OpenCodeSession
from karta.dataplane.harness.processes import descendants
from karta.testing import Reply, ScriptedModel, text, tool_use
from tests.harness.conftest import (
    Approver,
    NeverAnswers,
    alive,
    command_line,
    context,
    copy_example,
    interrupted,
    make_spec,
    openai_env,
    said,
    shape,
    started,
    status,
    turn,
)

pytestmark = pytest.mark.harness


@pytest.fixture
def harness(tmp_path: Path) -> OpenCodeHarness:
    return OpenCodeHarness(tmp_path / "home")


@pytest.fixture
def spec(tmp_path: Path, model: ScriptedModel) -> SessionSpec:
    return make_spec(tmp_path, copy_example(tmp_path, "opencode-bot"), openai_env(model))


async def opened(
    harness: OpenCodeHarness, spec: SessionSpec, closing: list[HarnessSession]
) -> tuple[OpenCodeSession, SessionSpec]:
    """The session, and the spec that resumes it (OpenCode names its conversations)."""
    session = await harness.open(spec)
    closing.append(session)
    return session, replace(spec, harness_session_id=session.harness_session_id, resume=True)


def opencode_servers() -> list[int]:
    return [pid for pid in descendants(os.getpid()) if "opencode" in command_line(pid)]


def prompts(model: ScriptedModel) -> list:
    return [r for r in model.requests if r.kind == "prompt"]


async def test_transcript_of_two_turns_with_an_approved_tool(harness, spec, model, closing):
    command = {"command": "echo hi", "description": "Say hi"}
    model.enqueue([text("Running it."), tool_use("bash", command)])
    model.enqueue([text("It said hi.")])
    model.enqueue([text("You are welcome.")])
    approver = Approver()
    session, stored = await opened(harness, spec, closing)

    assert status(await turn(session, "please say hi", approver)) == "completed"
    assert status(await turn(session, "thanks", approver)) == "completed"

    assert [r.tool for r in approver.requests] == ["bash"]
    transcript = await harness.transcript(stored)
    assert shape(transcript) == [
        ("user", [("text", "please say hi")]),
        ("assistant", [("text", "Running it."), ("tool", "bash", command, "completed")]),
        ("assistant", [("text", "It said hi.")]),
        ("user", [("text", "thanks")]),
        ("assistant", [("text", "You are welcome.")]),
    ]
    assert transcript[1]["parts"][1]["output"] == "hi\n"
    assert all(m["id"].startswith("msg_") and m["created_at"] for m in transcript)

    await session.close()
    assert not opencode_servers()
    # No server runs on the session any more: the read starts one, and stops it afterwards.
    assert await harness.transcript(stored) == transcript
    assert not opencode_servers()


async def test_a_pooled_server_is_primed_and_its_conversation_starts_with_the_first_turn(
    harness, spec, model, closing
):
    session, stored = await opened(harness, replace(spec, pooled=True), closing)
    assert model.requests == []  # priming calls no model
    model.enqueue([text("Medium.")])
    assert said(await turn(session, "Which roast?")) == "Medium."
    assert shape(await harness.transcript(stored)) == [
        ("user", [("text", "Which roast?")]),
        ("assistant", [("text", "Medium.")]),
    ]


async def test_opencode_never_runs_npm_on_its_config_folders(harness, spec, model, closing):
    # Unsandboxed (nothing cuts the network), OpenCode would install its plugin package from
    # the registry into every config folder it finds, the app's `.opencode/` included.
    session, _ = await opened(harness, spec, closing)
    model.enqueue([text("Medium.")])
    assert said(await turn(session, "Which roast?")) == "Medium."
    await session.close()
    assert not [p for p in spec.state_dir.rglob(".npm")], "npm ran"
    assert not (spec.workspace / ".opencode" / "node_modules" / "@opencode-ai").exists()


async def test_a_pooled_server_whose_priming_fails_still_serves_its_first_turn(
    harness, spec, model, closing, monkeypatch
):
    monkeypatch.setattr("karta.dataplane.harness.opencode.PRIME_TIMEOUT", 0.0)
    session, _ = await opened(harness, replace(spec, pooled=True), closing)
    model.enqueue([text("Dark.")])
    assert said(await turn(session, "Which roast?")) == "Dark."


async def test_a_subagent_s_permission_request_is_decided_by_the_running_turn(
    harness, spec, model, closing
):
    # The `task` tool runs a subagent in a child session of OpenCode's own; its permission
    # requests carry the child's id, and the turn still decides them.
    task = {"description": "Write a file", "prompt": "Write child.txt", "subagent_type": "general"}
    command = {"command": "echo from-child > child.txt", "description": "Write it"}
    model.enqueue([text("Asking a helper."), tool_use("task", task)])
    model.enqueue([tool_use("bash", command)])
    model.enqueue([text("Wrote it.")])
    model.enqueue([text("The helper wrote it.")])
    approver = Approver()
    session, _ = await opened(harness, spec, closing)

    events = await turn(session, "have a helper write child.txt", approver)

    assert status(events) == "completed", [e.data for e in events if e.type == ERROR]
    assert [r.tool for r in approver.requests] == ["bash"]
    assert (spec.workspace / "child.txt").read_text() == "from-child\n"
    assert said(events).endswith("The helper wrote it.")


async def test_interrupt_mid_model_call_then_the_next_turn(harness, spec, model, closing):
    model.enqueue(Reply([text("This answer comes too late.")], delay=5))
    model.enqueue([text("Here is the second answer.")])
    session, _ = await opened(harness, spec, closing)

    ctx = context("first question")
    events, latency = await interrupted(session, ctx, lambda: len(prompts(model)) == 1)

    print(f"OpenCode: interrupt to end of turn {latency:.3f} s")
    assert latency < 2.0
    assert status(events) == "cancelled"
    assert not [e for e in events if e.type == ERROR], "the interrupt is no error"

    after = await turn(session, "second question")
    assert status(after) == "completed" and said(after) == "Here is the second answer."
    last = prompts(model)[-1]
    assert last.prompt == "second question"
    assert "first question" in last.transcript_text, "the same conversation goes on"


async def test_interrupt_while_a_permission_waits(harness, spec, model, closing):
    model.enqueue([tool_use("bash", {"command": "echo hi > hi.txt", "description": "Write hi"})])
    model.enqueue([text("Back again.")])
    session, _ = await opened(harness, spec, closing)
    nobody = NeverAnswers()

    events, latency = await interrupted(session, context("write hi", nobody), nobody.asked.is_set)

    assert latency < 2.0 and status(events) == "cancelled"
    assert nobody.given_up.is_set(), "the request ended with its turn"
    after = await turn(session, "still there?")
    assert status(after) == "completed" and said(after) == "Back again."
    assert not (spec.workspace / "hi.txt").exists()


async def test_a_handoff_gives_the_next_turn_the_other_agent_s_prompt(
    harness, spec, model, closing
):
    model.enqueue([text("Hello from the concierge.")])
    model.enqueue([text("Billing here.")])
    first, stored = await opened(harness, spec, closing)
    assert first.agent.name == "concierge"
    await turn(first, "hello")
    await first.close()

    # The runtime reopens a session whose agent changed, resuming the stored conversation.
    second, _ = await opened(harness, replace(stored, agent=spec.app.agent("billing")), closing)
    assert second.harness_session_id == first.harness_session_id
    await turn(second, "I was charged twice")

    before, after = prompts(model)
    assert "You are the concierge of Beans & Co." in before.transcript_text
    assert "You handle billing for Beans & Co." not in before.transcript_text
    assert "You handle billing for Beans & Co." in after.transcript_text
    assert "Hello from the concierge." in after.transcript_text, "the conversation goes on"


@pytest.mark.parametrize("force", [False, True])
async def test_close_ends_the_tools_still_running(harness, spec, model, closing, force):
    model.enqueue([tool_use("bash", {"command": "sleep 60", "description": "Wait"})])
    session, _ = await opened(harness, spec, closing)
    running = asyncio.create_task(turn(session, "wait a minute"))
    processes = await started("sleep 60")

    begun = time.monotonic()
    await session.close(force=force)
    took = time.monotonic() - begun

    assert not [pid for pid in processes if alive(pid)], "the server and its tool are gone"
    assert took < (1.0 if force else 6.0), f"closing took {took:.2f} s"
    with pytest.raises(HarnessFailure):
        await running
