"""The Claude Code adapter against the real bundled CLI and the scripted model."""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest

from karta.app.agents import BUILTIN_AGENT
from karta.core.events import ERROR
from karta.dataplane.harness.base import HarnessFailure, HarnessSession, SessionSpec
from karta.dataplane.harness.claude_code import ClaudeCodeHarness, ClaudeCodeSession
from karta.testing import Reply, ScriptedModel, text, tool_use
from tests.harness.conftest import (
    Approver,
    NeverAnswers,
    alive,
    anthropic_env,
    context,
    copy_example,
    interrupted,
    make_spec,
    run_turn,
    said,
    shape,
    started,
    status,
    turn,
)

pytestmark = pytest.mark.harness

MCP_SERVER = Path(__file__).with_name("mcp_orders.py")


@pytest.fixture
def harness(tmp_path: Path) -> ClaudeCodeHarness:
    return ClaudeCodeHarness(tmp_path / "home", max_retries=0)


@pytest.fixture
def spec(tmp_path: Path, model: ScriptedModel) -> SessionSpec:
    workspace = copy_example(tmp_path, "support-bot")
    return make_spec(
        tmp_path, workspace, anthropic_env(model), harness_session_id=str(uuid.uuid4())
    )


async def opened(
    harness: ClaudeCodeHarness, spec: SessionSpec, closing: list[HarnessSession]
) -> ClaudeCodeSession:
    session = await harness.open(spec)
    closing.append(session)
    return session


async def test_transcript_of_two_turns_with_an_approved_tool(harness, spec, model, closing):
    # Bash with a write: Claude Code runs read-only commands (a bare `echo hi`) without asking.
    spec = replace(spec, agent=BUILTIN_AGENT)
    command = {"command": "echo hi > hi.txt", "description": "Write hi"}
    model.enqueue([text("Writing it."), tool_use("Bash", command)])
    model.enqueue([text("Wrote it.")])
    model.enqueue([text("You are welcome.")])
    approver = Approver()
    session = await opened(harness, spec, closing)

    assert status(await turn(session, "please write hi", approver)) == "completed"
    assert status(await turn(session, "thanks", approver)) == "completed"

    assert [r.tool for r in approver.requests] == ["Bash"]
    assert (spec.workspace / "hi.txt").read_text() == "hi\n"
    transcript = await harness.transcript(spec)
    assert shape(transcript) == [
        ("user", [("text", "please write hi")]),
        ("assistant", [("text", "Writing it."), ("tool", "Bash", command, "completed")]),
        ("assistant", [("text", "Wrote it.")]),
        ("user", [("text", "thanks")]),
        ("assistant", [("text", "You are welcome.")]),
    ]
    tool = transcript[1]["parts"][1]
    assert tool["id"].startswith("toolu_") and isinstance(tool["output"], str)
    moments = [datetime.fromisoformat(m["created_at"]) for m in transcript]
    assert moments == sorted(moments) and all(m.utcoffset() is not None for m in moments)

    await session.close()
    assert await harness.transcript(spec) == transcript, "read from the file, not the process"


async def test_a_pooled_process_is_primed_and_its_conversation_starts_with_the_first_turn(
    harness, spec, model, closing
):
    session = await opened(harness, replace(spec, pooled=True), closing)
    assert model.requests == []  # priming calls no model
    model.enqueue([text("Medium.")])
    assert said(await turn(session, "Which roast?")) == "Medium."
    assert shape(await harness.transcript(spec)) == [
        ("user", [("text", "Which roast?")]),
        ("assistant", [("text", "Medium.")]),
    ]


async def test_a_pooled_process_whose_priming_fails_still_serves_its_first_turn(
    harness, spec, model, closing, monkeypatch
):
    async def refuse(_client: object) -> None:
        raise RuntimeError("unsupported control request")

    monkeypatch.setattr("claude_agent_sdk.ClaudeSDKClient.get_context_usage", refuse)
    session = await opened(harness, replace(spec, pooled=True), closing)
    model.enqueue([text("Dark.")])
    assert said(await turn(session, "Which roast?")) == "Dark."


async def test_transcript_after_a_handoff_shows_the_user_s_words_only(
    harness, spec, model, closing
):
    model.enqueue([text("Hello, how can I help?")])
    model.enqueue([text("Let me look at that charge.")])
    first = await opened(harness, spec, closing)
    await turn(first, "hello")
    await first.close()

    billing = replace(spec, agent=spec.app.agent("billing"), resume=True)
    second = await opened(harness, billing, closing)
    await run_turn(second, context("I was charged twice", handoff=True))

    asked = model.requests[-1]
    assert 'act as the "billing" agent' in asked.transcript_text, "the handoff reached the model"
    transcript = await harness.transcript(billing)
    users = [m["parts"] for m in transcript if m["role"] == "user"]
    assert users == [
        [{"type": "text", "text": "hello"}],
        [{"type": "text", "text": "I was charged twice"}],
    ]


async def test_interrupt_mid_model_call_then_the_next_turn(harness, spec, model, closing):
    model.enqueue(Reply([text("This answer comes too late.")], delay=5))
    model.enqueue([text("Here is the second answer.")])
    session = await opened(harness, spec, closing)

    ctx = context("first question")
    events, latency = await interrupted(session, ctx, lambda: len(model.requests) == 1)

    print(f"Claude Code: interrupt to end of turn {latency:.3f} s")
    assert latency < 2.0
    assert status(events) == "cancelled"
    assert not [e for e in events if e.type == ERROR], "the interrupt is no error"
    assert "too late" not in said(events)

    after = await turn(session, "second question")
    assert status(after) == "completed" and said(after) == "Here is the second answer."
    last = model.requests[-1]
    assert last.prompt == "second question"
    assert "first question" in last.transcript_text, "the same conversation goes on"


async def test_a_turn_stopped_before_its_message_is_through_stops_at_once(
    harness, spec, model, closing
):
    model.enqueue(Reply([text("This answer comes too late.")], delay=5))
    session = await opened(harness, spec, closing)
    ctx = context("never mind")
    ctx.cancelled.set()  # before the CLI has the message: an interrupt now would stop nothing
    await session.interrupt()

    begun = time.monotonic()
    events = await run_turn(session, ctx)

    assert time.monotonic() - begun < 2.0 and status(events) == "cancelled"


async def test_interrupt_while_a_permission_waits(harness, spec, model, closing):
    spec = replace(spec, agent=BUILTIN_AGENT)
    model.enqueue([tool_use("Bash", {"command": "echo hi > hi.txt", "description": "Write hi"})])
    model.enqueue([text("Back again.")])
    session = await opened(harness, spec, closing)
    nobody = NeverAnswers()

    events, latency = await interrupted(session, context("write hi", nobody), nobody.asked.is_set)

    assert latency < 2.0 and status(events) == "cancelled"
    assert nobody.given_up.is_set(), "the request ended with its turn"
    assert status(await turn(session, "still there?")) == "completed"
    assert not (spec.workspace / "hi.txt").exists()


async def test_force_close_kills_the_cli_and_its_running_tool(harness, spec, model, closing):
    spec = replace(spec, agent=BUILTIN_AGENT)
    command = "sleep 60 > /dev/null && echo done > done.txt"
    model.enqueue([tool_use("Bash", {"command": command, "description": "Wait"})])
    session = await opened(harness, spec, closing)
    running = asyncio.create_task(turn(session, "wait a minute"))
    processes = await started("sleep 60")

    begun = time.monotonic()
    await session.close(force=True)
    took = time.monotonic() - begun

    assert took < 1.0, f"a forced close took {took:.2f} s"
    assert not [pid for pid in processes if alive(pid)], "the CLI and its tool are gone"
    with pytest.raises(HarnessFailure):
        await running


async def test_the_app_s_mcp_server_reaches_the_model(harness, spec, model, closing):
    # Started headless (the SDK's stream-json mode), Claude Code 2.1.330 loads the project's
    # `.mcp.json` servers without the trust prompt of its terminal UI: measured with no settings
    # and with `enableAllProjectMcpServers: false` alike (only `disabledMcpjsonServers` in
    # `.claude/settings.json` turns a server off), so an app needs no setting for them.
    servers = {"orders": {"type": "stdio", "command": sys.executable, "args": [str(MCP_SERVER)]}}
    (spec.workspace / ".mcp.json").write_text(json.dumps({"mcpServers": servers}))
    model.enqueue([tool_use("mcp__orders__lookup_order", {"order_id": "A-17"})])
    model.enqueue([text("Your order shipped yesterday.")])
    approver = Approver()
    session = await opened(harness, spec, closing)

    assert status(await turn(session, "where is order A-17?", approver)) == "completed"

    first, second = model.requests[:2]
    assert "mcp__orders__lookup_order" in [tool["name"] for tool in first.body["tools"]]
    assert [r.tool for r in approver.requests] == ["mcp__orders__lookup_order"]
    assert [r["content"] for r in second.tool_results] == ["order A-17 shipped yesterday"]
