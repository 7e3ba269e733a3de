"""The OpenCode session's reading of its event stream against a scripted stand-in for
`opencode serve`: the orderings the real server produces only by chance (a straggler of an
aborted turn arriving late) or only when misused (a refused message, a request with no turn)."""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from karta.core.events import ERROR
from karta.core.sse import Frame
from karta.dataplane.harness.opencode import OpenCodeSession
from tests.harness.conftest import context, copy_example, make_spec, run_turn, said, status

pytestmark = pytest.mark.harness

SESSION = "ses_fake"


def event(kind: str, **properties: Any) -> dict[str, Any]:
    return {"type": kind, "properties": {"sessionID": SESSION, **properties}}


def stored(message_id: str, role: str) -> dict[str, Any]:
    return event("message.updated", info={"id": message_id, "role": role, "sessionID": SESSION})


def answer(message_id: str, words: str) -> list[dict[str, Any]]:
    part = {"id": f"prt_{message_id}", "messageID": message_id, "type": "text", "text": words}
    return [stored(message_id, "assistant"), event("message.part.updated", part=part)]


class FakeOpenCode:
    """Answers the adapter's HTTP calls; each message sent puts the next of `scripts` on the
    event stream."""

    def __init__(self, *scripts: list[dict[str, Any]]) -> None:
        self.scripts = list(scripts)
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.posted: list[str] = []
        self.replies: list[tuple[str, dict[str, Any]]] = []
        self.replied = asyncio.Event()

    async def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method == "POST":
            self.posted.append(path)
        if path == "/event":
            return httpx.Response(200, content=self._stream())
        if path == "/session":
            return httpx.Response(200, json={"id": SESSION})
        if path == f"/session/{SESSION}/prompt_async":
            for item in self.scripts.pop(0):
                self.events.put_nowait(item)
            return httpx.Response(204)
        if path.startswith("/permission/"):
            self.replies.append((path, json.loads(request.content)))
            self.replied.set()
            return httpx.Response(200, json=True)
        return httpx.Response(404)

    async def _stream(self) -> AsyncIterator[bytes]:
        yield Frame(None, {"type": "server.connected", "properties": {}}).encode()
        while True:
            yield Frame(None, await self.events.get()).encode()


@pytest.fixture
async def fake_session(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """An `OpenCodeSession` whose HTTP calls reach a `FakeOpenCode` (returned with it)."""
    sessions: list[OpenCodeSession] = []

    async def start(server: FakeOpenCode) -> OpenCodeSession:
        transport = httpx.MockTransport(server.handle)
        client = functools.partial(httpx.AsyncClient, transport=transport)
        monkeypatch.setattr(httpx, "AsyncClient", client)
        # A stand-in for the server process, for the session to drain and stop.
        process = await asyncio.create_subprocess_exec(
            "sleep", "60", stdout=asyncio.subprocess.PIPE, start_new_session=True
        )
        spec = make_spec(tmp_path, copy_example(tmp_path, "opencode-bot"), {})
        session = OpenCodeSession(spec, process, "http://opencode.test")
        sessions.append(session)
        await session.start()
        return session

    yield start
    for session in sessions:
        await session.close(force=True)


async def test_stragglers_of_the_previous_turn_do_not_end_the_next(fake_session):
    server = FakeOpenCode(
        [stored("msg_1", "user"), *answer("msg_2", "First."), event("session.idle")],
        [
            # Late, after the next message was sent: the aborted turn's second idle, and
            # OpenCode's summary of that turn's message, stored again.
            event("session.idle"),
            stored("msg_1", "user"),
            event("session.idle"),
            stored("msg_3", "user"),
            *answer("msg_4", "The fresh answer."),
            event("session.idle"),
        ],
    )
    session = await fake_session(server)
    assert said(await run_turn(session, context("first question"))) == "First."

    events = await asyncio.wait_for(run_turn(session, context("next question")), 5)

    assert status(events) == "completed" and said(events) == "The fresh answer."


async def test_a_message_refused_after_it_was_accepted_fails_the_turn(fake_session):
    # An unknown agent: OpenCode accepts `prompt_async`, then reports an error, stores no
    # message and never goes idle.
    refused = {"name": "UnknownError", "data": {"message": 'Agent not found: "ghost"'}}
    session = await fake_session(FakeOpenCode([event("session.error", error=refused)]))

    events = await asyncio.wait_for(run_turn(session, context("hello")), 5)

    assert status(events) == "failed"
    assert [e.data["message"] for e in events if e.type == ERROR] == ['Agent not found: "ghost"']


async def test_a_permission_asked_outside_a_turn_is_rejected_at_once(fake_session):
    server = FakeOpenCode()
    await fake_session(server)

    server.events.put_nowait(event("permission.asked", id="per_1", permission="bash"))
    await asyncio.wait_for(server.replied.wait(), 5)

    # A bare reject ends OpenCode's turn: left unanswered, the session would stay busy.
    assert server.replies == [("/permission/per_1/reply", {"reply": "reject"})]


async def test_a_turn_stopped_before_its_message_is_through_aborts_once_it_is(fake_session):
    aborted = {"name": "MessageAbortedError", "data": {"message": "Aborted"}}
    server = FakeOpenCode(
        [stored("msg_1", "user"), event("session.error", error=aborted), event("session.idle")]
    )
    session = await fake_session(server)
    ctx = context("never mind")
    ctx.cancelled.set()  # before OpenCode has the message: an abort now would stop nothing
    await session.interrupt()

    events = await asyncio.wait_for(run_turn(session, ctx), 5)

    assert status(events) == "cancelled" and not [e for e in events if e.type == ERROR]
    sent = f"/session/{SESSION}/prompt_async"
    assert server.posted[-2:] == [sent, f"/session/{SESSION}/abort"]
