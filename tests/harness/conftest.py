"""Drive the real harness binaries through their adapters, against the scripted model (the
module-scoped `model` fixture of tests/conftest.py, reset before every test)."""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from karta.app import load_app
from karta.core.events import DONE, TEXT, Event
from karta.dataplane.harness.base import (
    ApprovalAnswer,
    HarnessSession,
    SessionSpec,
    ToolRequest,
    TurnContext,
    Verdict,
)
from karta.dataplane.harness.processes import descendants
from karta.testing import ScriptedModel

ROOT = Path(__file__).resolve().parents[2]
TURN_TIMEOUT = 90.0  # a hung harness fails its test instead of the whole run
_turn_ids = itertools.count(1)


def copy_example(tmp_path: Path, name: str) -> Path:
    target = tmp_path / name
    shutil.copytree(ROOT / "examples" / name, target)
    return target


def make_spec(
    tmp_path: Path,
    workspace: Path,
    model_env: dict[str, str],
    harness_session_id: str = "",
) -> SessionSpec:
    app = load_app(workspace)
    return SessionSpec(
        session_id="ses-test",
        app=app,
        agent=app.default_agent,
        workspace=workspace,
        state_dir=tmp_path / "state",
        harness_session_id=harness_session_id,
        resume=False,
        model_env=model_env,
    )


def anthropic_env(model: ScriptedModel) -> dict[str, str]:
    return {"ANTHROPIC_BASE_URL": model.url, "ANTHROPIC_API_KEY": "test-key"}


def openai_env(model: ScriptedModel) -> dict[str, str]:
    return {"OPENAI_BASE_URL": f"{model.url}/v1", "OPENAI_API_KEY": "test-key"}


@dataclass
class Approver:
    """Answers every permission request with `verdict` and remembers the requests."""

    verdict: Verdict = Verdict.ALLOW
    requests: list[ToolRequest] = field(default_factory=list)

    async def __call__(self, request: ToolRequest) -> ApprovalAnswer:
        self.requests.append(request)
        return ApprovalAnswer(self.verdict)


@dataclass
class NeverAnswers:
    """A decider who never decides: the request must be given up when its turn ends."""

    asked: asyncio.Event = field(default_factory=asyncio.Event)
    given_up: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, request: ToolRequest) -> ApprovalAnswer:
        self.asked.set()
        try:
            await asyncio.Event().wait()
        finally:
            self.given_up.set()
        raise AssertionError("unreachable")


async def _keep(event: Event) -> Event:
    return event


def context(text: str, approvals: Callable | None = None, **extra: bool) -> TurnContext:
    return TurnContext(
        turn_id=f"turn-{next(_turn_ids)}",
        text=text,
        approvals=approvals or Approver(),
        emit=_keep,
        **extra,
    )


async def run_turn(session: HarnessSession, ctx: TurnContext) -> list[Event]:
    async with asyncio.timeout(TURN_TIMEOUT):
        events = [event async for event in session.turn(ctx)]
    assert [e.type for e in events].count(DONE) == 1 and events[-1].type == DONE, events
    return events


async def turn(
    session: HarnessSession, text: str, approvals: Callable | None = None
) -> list[Event]:
    return await run_turn(session, context(text, approvals))


async def interrupted(
    session: HarnessSession, ctx: TurnContext, ready: Callable[[], bool]
) -> tuple[list[Event], float]:
    """Run a turn, interrupt it (the way the runtime does) once `ready()`, and return its events
    and the seconds from the interrupt to the end of the turn's iterator."""
    events: list[Event] = []
    ended = 0.0

    async def consume() -> None:
        nonlocal ended
        async for event in session.turn(ctx):
            events.append(event)
        ended = time.monotonic()

    task = asyncio.create_task(consume())
    async with asyncio.timeout(TURN_TIMEOUT):
        while not ready():
            assert not task.done(), f"the turn ended before it could be interrupted: {events}"
            await asyncio.sleep(0.02)
        ctx.cancelled.set()
        asked = time.monotonic()
        await session.interrupt()
        await task
    return events, ended - asked


def shape(transcript: list[dict[str, Any]]) -> list[tuple[str, list[Any]]]:
    """The transcript without what varies from run to run (ids, times, tool output text)."""
    out = []
    for message in transcript:
        parts = []
        for part in message["parts"]:
            if part["type"] == "tool":
                parts.append(("tool", part["tool"], part["input"], part["status"]))
            else:
                parts.append((part["type"], part["text"]))
        out.append((message["role"], parts))
    return out


def status(events: list[Event]) -> str:
    return str(events[-1].data["status"])


def said(events: list[Event]) -> str:
    return "".join(e.data["part"]["text"] for e in events if e.type == TEXT)


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie waiting for a reaper that may never come does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


async def started(pattern: str) -> list[int]:
    """Wait until a process of this test runs `pattern`; return all this test's processes."""
    async with asyncio.timeout(TURN_TIMEOUT):
        while True:
            mine = descendants(os.getpid())
            if any(pattern in command_line(pid) for pid in mine):
                return mine
            await asyncio.sleep(0.05)


@pytest.fixture
async def closing() -> AsyncIterator[list[HarnessSession]]:
    """Sessions a test opened, force-closed after it whatever happened: a failed test must not
    leave a harness process running."""
    sessions: list[HarnessSession] = []
    yield sessions
    for session in sessions:
        await session.close(force=True)
