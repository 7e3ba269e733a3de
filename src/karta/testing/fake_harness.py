"""An in-process harness that plays scripted turns: the runtime's whole turn pipeline (events,
approvals, interrupts, crashes, resumes, handoffs) without a harness binary or a model (a
`CallModel` step calls the model proxy as a real harness would).

A turn is a list of steps, queued for one session or for any (`FakeHarness.enqueue`); each
message a fake session takes plays the next queued turn, or echoes the message when none is
left. The harness records what it was given (`opened`, `closed`, `killed`, `received`,
`answers`, `interrupted`) and keeps an in-memory transcript per harness session id, so
`has_transcript` and `transcript` behave like a real harness's: a session reopened after a
crash, a handoff or a restart resumes (`spec.resume`) as long as the same `FakeHarness`
instance serves it.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections import deque
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from typing import Any

import httpx

from karta.core import events as ev
from karta.core.clock import SYSTEM, Clock
from karta.core.events import Event
from karta.core.ids import new_id
from karta.core.sse import aiter_frames
from karta.dataplane.harness.base import (
    ApprovalAnswer,
    HarnessFailure,
    HarnessGone,
    SessionSpec,
    ToolRequest,
    TurnContext,
    Verdict,
)

SOURCE = "fake"


@dataclass(frozen=True)
class Say:
    """Text, streamed as deltas of `chunk` characters under one part id."""

    text: str
    chunk: int = 8
    part_id: str | None = None  # default: one of the turn's own


@dataclass(frozen=True)
class Reason:
    """Reasoning, as one delta (played as scripted, whatever `ctx.thinking` says)."""

    text: str
    part_id: str | None = None


@dataclass(frozen=True)
class UseTool:
    """A tool the harness runs without asking: `running`, then `completed` (or `error`)."""

    tool: str
    input: dict[str, Any] = field(default_factory=dict)
    output: str = ""
    error: bool = False
    tool_use_id: str | None = None


@dataclass(frozen=True)
class Ask:
    """A tool that needs permission: the turn asks `ctx.approvals` and waits for the answer.
    Allowed, the tool completes with `output`; denied, it ends in `error` and the harness says
    the answer's message (as a model told "no" would)."""

    tool: str
    input: dict[str, Any] = field(default_factory=dict)
    output: str = ""
    tool_use_id: str | None = None


@dataclass(frozen=True)
class Crash:
    """The harness dies mid-turn: `HarnessFailure` after the steps before it."""

    message: str = "the fake harness crashed"


@dataclass(frozen=True)
class Gone:
    """The process died while idle: the turn raises `HarnessGone` before taking the message, so
    the runtime may open a fresh session and send it again (which plays the next queued turn).
    A turn of its own: nothing can follow it."""


@dataclass(frozen=True)
class Wait:
    """A slow step: waits `seconds` on the harness's clock and/or until `until` is set (with
    neither, until the turn is interrupted). An interrupt, or `ctx.cancelled`, ends the wait and
    the turn: its `done` says `cancelled` and the steps left are skipped."""

    seconds: float | None = None
    until: asyncio.Event | None = None


@dataclass(frozen=True)
class CallModel:
    """A model call, made as a harness makes it: an Anthropic Messages request (streamed) to
    the endpoint and with the credential in the session's `model_env` (Karta's model proxy).
    The reply's text is said; a refused call is said as `(model error <status>)`, as a harness
    reports an API error and ends its turn."""

    prompt: str = "hello"
    model: str = "claude-fake"


Step = Say | Reason | UseTool | Ask | Crash | Gone | Wait | CallModel


@dataclass(frozen=True)
class Turn:
    steps: tuple[Step, ...]
    usage: dict[str, Any] | None = None  # what the turn's `done` reports


@dataclass(frozen=True)
class Received:
    """A message a fake session took, with what its turn context said."""

    session_id: str
    harness_session_id: str
    turn_id: str
    agent: str
    text: str
    handoff: bool
    thinking: bool


class FakeHarness:
    """A `karta.dataplane.harness.base.Harness` for tests; it stands in for any harness kind
    (`open_runtime(..., harnesses=lambda kind: fake)`). `clock` paces `Wait(seconds=…)`: pass
    the runtime's `FakeClock` to drive it with `advance`."""

    kind = "fake"

    def __init__(self, clock: Clock = SYSTEM) -> None:
        self.clock = clock
        self.opened: list[SessionSpec] = []  # every open, in order (`spec.resume` on a resume)
        self.closed: list[str] = []  # Karta session ids, one per closed harness session
        self.killed: list[str] = []  # the same, for the closes with `force` (a kill)
        self.received: list[Received] = []
        self.answers: list[ApprovalAnswer] = []  # what each `Ask` was told
        self.interrupted: list[str] = []  # Karta session ids, one per `interrupt()`
        self._queue: deque[Turn] = deque()
        self._queues: dict[str, deque[Turn]] = {}
        self._transcripts: dict[str, list[dict[str, Any]]] = {}

    def enqueue(
        self, *steps: Step, usage: dict[str, Any] | None = None, session: str | None = None
    ) -> None:
        """Queue one turn, for the Karta session `session` or (without) for any session; a
        session's own queue is played before the shared one."""
        if any(isinstance(step, Gone) for step in steps) and steps != (Gone(),):
            raise ValueError("Gone() is a turn of its own: the message never reached the harness")
        queue = self._queue if session is None else self._queues.setdefault(session, deque())
        queue.append(Turn(steps, usage))

    def _next(self, session_id: str, text: str) -> Turn:
        for queue in (self._queues.get(session_id), self._queue):
            if queue:
                return queue.popleft()
        return Turn((Say(text),))

    # --- the Harness protocol -----------------------------------------------------------------

    def available(self) -> bool:
        return True

    def has_transcript(self, spec: SessionSpec) -> bool:
        return spec.harness_session_id in self._transcripts

    async def open(self, spec: SessionSpec) -> FakeSession:
        self.opened.append(spec)
        return FakeSession(self, spec)

    async def transcript(self, spec: SessionSpec) -> list[dict[str, Any]]:
        return copy.deepcopy(self._transcripts.get(spec.harness_session_id, []))

    def _message(self, harness_session_id: str, role: str) -> list[dict[str, Any]]:
        """A new message of the transcript, returned as its (growing) list of parts."""
        parts: list[dict[str, Any]] = []
        self._transcripts.setdefault(harness_session_id, []).append(
            {
                "id": new_id("msg"),
                "role": role,
                "parts": parts,
                "created_at": self.clock.now().isoformat(),
            }
        )
        return parts


class FakeSession:
    """One open fake conversation (a `HarnessSession`)."""

    def __init__(self, harness: FakeHarness, spec: SessionSpec) -> None:
        self.harness_session_id = spec.harness_session_id
        self.agent = spec.agent
        self._harness = harness
        self._spec = spec
        self._interrupted = asyncio.Event()

    async def turn(self, ctx: TurnContext) -> AsyncIterator[Event]:
        harness, session_id = self._harness, self._spec.session_id
        script = harness._next(session_id, ctx.text)
        if script.steps == (Gone(),):
            raise HarnessGone("the fake harness was gone before it took the message")
        self._interrupted.clear()  # an interrupt stops the turn it was sent to, not the next
        harness.received.append(
            Received(
                session_id=session_id,
                harness_session_id=self.harness_session_id,
                turn_id=ctx.turn_id,
                agent=self.agent.name,
                text=ctx.text,
                handoff=ctx.handoff,
                thinking=ctx.thinking,
            )
        )
        harness._message(self.harness_session_id, "user").append({"type": "text", "text": ctx.text})
        ctx.handed.set()
        parts = harness._message(self.harness_session_id, "assistant")
        for index, step in enumerate(script.steps):
            if self._stopped(ctx):
                break
            async for event in self._play(step, f"{ctx.turn_id}-{index}", ctx, parts):
                yield event
        status = "cancelled" if self._stopped(ctx) else "completed"
        yield ev.done_event(script.usage, status=status)

    def _stopped(self, ctx: TurnContext) -> bool:
        return ctx.cancelled.is_set() or self._interrupted.is_set()

    async def _play(
        self, step: Step, default_id: str, ctx: TurnContext, parts: list[dict[str, Any]]
    ) -> AsyncIterator[Event]:
        match step:
            case Say():
                part_id = step.part_id or f"text-{default_id}"
                parts.append({"type": "text", "text": step.text})
                size = max(step.chunk, 1)
                for start in range(0, len(step.text), size):
                    yield ev.text_event(part_id, step.text[start : start + size], source=SOURCE)
            case Reason():
                part_id = step.part_id or f"reasoning-{default_id}"
                parts.append({"type": "reasoning", "text": step.text})
                yield ev.text_event(part_id, step.text, kind=ev.REASONING, source=SOURCE)
            case UseTool():
                tool_use_id = step.tool_use_id or f"tool-{default_id}"
                yield _tool_event(tool_use_id, step.tool, step.input, "running")
                status = "error" if step.error else "completed"
                parts.append(_tool_part(tool_use_id, step.tool, step.input, step.output, status))
                yield _tool_event(tool_use_id, step.tool, step.input, status, step.output)
            case Ask():
                tool_use_id = step.tool_use_id or f"tool-{default_id}"
                yield _tool_event(tool_use_id, step.tool, step.input, "running")
                answer = await ctx.approvals(ToolRequest(step.tool, step.input, tool_use_id))
                self._harness.answers.append(answer)
                if answer.verdict is Verdict.ALLOW:
                    output, status = step.output, "completed"
                else:
                    output, status = answer.message or "The user denied this action.", "error"
                parts.append(_tool_part(tool_use_id, step.tool, step.input, output, status))
                yield _tool_event(tool_use_id, step.tool, step.input, status, output)
                if status == "error":
                    parts.append({"type": "text", "text": output})
                    yield ev.text_event(f"text-{default_id}", output, source=SOURCE)
            case Crash():
                raise HarnessFailure(step.message)
            case Wait():
                await self._wait(step, ctx)
            case CallModel():
                said = await self._call_model(step)
                parts.append({"type": "text", "text": said})
                yield ev.text_event(f"text-{default_id}", said, source=SOURCE)
            case Gone():
                raise AssertionError("unreachable: enqueue allows Gone() only as a whole turn")

    async def _wait(self, step: Wait, ctx: TurnContext) -> None:
        """Until the delay passes, `until` is set or the turn is stopped, whichever is first."""
        signals = [ctx.cancelled, self._interrupted, *([step.until] if step.until else [])]
        waiters = [asyncio.ensure_future(signal.wait()) for signal in signals]
        first: Awaitable[Any] = asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        try:
            if step.seconds is None:
                await first
            else:
                await self._harness.clock.wait_for(first, step.seconds)
        except TimeoutError:
            pass  # the delay passed: the turn goes on
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def _call_model(self, step: CallModel) -> str:
        env = self._spec.model_env
        body = {
            "model": step.model,
            "max_tokens": 256,
            "stream": True,
            "messages": [{"role": "user", "content": step.prompt}],
        }
        headers = {
            "x-api-key": env.get("ANTHROPIC_API_KEY", ""),
            "anthropic-version": "2023-06-01",
            "x-claude-code-session-id": self.harness_session_id,
        }
        url = env.get("ANTHROPIC_BASE_URL", "").rstrip("/") + "/v1/messages"
        said = []
        async with (
            httpx.AsyncClient(timeout=30.0) as client,
            client.stream("POST", url, json=body, headers=headers) as answer,
        ):
            if answer.status_code != 200:
                await answer.aread()
                return f"(model error {answer.status_code})"
            async for frame in aiter_frames(answer.aiter_lines()):
                event = json.loads(frame.data)
                if event.get("type") == "content_block_delta":
                    said.append(str(event.get("delta", {}).get("text", "")))
        return "".join(said)

    async def interrupt(self) -> None:
        self._harness.interrupted.append(self._spec.session_id)
        self._interrupted.set()

    async def close(self, *, force: bool = False) -> None:
        self._harness.closed.append(self._spec.session_id)
        if force:
            self._harness.killed.append(self._spec.session_id)


def _tool_part(
    tool_use_id: str, tool: str, tool_input: dict[str, Any], output: str, status: str
) -> dict[str, Any]:
    return {
        "type": "tool",
        "id": tool_use_id,
        "tool": tool,
        "input": tool_input,
        "output": output,
        "status": status,
    }


def _tool_event(
    tool_use_id: str,
    tool: str,
    tool_input: dict[str, Any],
    status: str,
    output: str | None = None,
) -> Event:
    # The shape the real adapters emit (see `claude_events`), so projections read it alike.
    state: dict[str, Any] = {"status": status, "input": tool_input}
    if output is not None:
        state["output"] = output
    part = {"id": tool_use_id, "type": "tool", "tool": tool, "callID": tool_use_id, "state": state}
    data = {"part": part, "tool_name": tool, "tool_input": tool_input, "tool_use_id": tool_use_id}
    return Event(ev.TOOL_USE, data, SOURCE)
