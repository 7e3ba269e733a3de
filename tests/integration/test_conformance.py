"""The harness conformance suite: every adapter passes the same turn, streaming, approval,
resume and crash tests — Claude Code (examples/support-bot) and OpenCode (examples/opencode-bot).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from karta.core.sse import iter_events
from karta.testing import Reply, ScriptedModel, error_reply, text, tool_use
from tests.conftest import ROOT, Database, KartaServer, stream_events, texts
from tests.integration.test_planes import eventually
from tests.integration.test_resilience import harness_processes

pytestmark = pytest.mark.harness


@dataclass(frozen=True)
class Flavour:
    app: Path
    write_tool: str
    path_key: str
    failing_status: int  # a model error the harness reports without retrying forever

    def write(self, path: str, content: str) -> dict[str, Any]:
        return tool_use(self.write_tool, {self.path_key: path, "content": content})


FLAVOURS = {
    "claude-code": Flavour(ROOT / "examples" / "support-bot", "Write", "file_path", 500),
    "opencode": Flavour(ROOT / "examples" / "opencode-bot", "write", "filePath", 400),
}


@pytest.fixture(scope="module", params=sorted(FLAVOURS))
def flavour(request: pytest.FixtureRequest) -> Flavour:
    return FLAVOURS[request.param]


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def database_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def harness_server(
    flavour: Flavour,
    model: ScriptedModel,
    database_kind: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[KartaServer]:
    database = Database(database_kind)  # its own, whichever flavour ran before
    home = tmp_path_factory.mktemp("conformance")
    server = KartaServer(flavour.app, home, model, database).start()
    yield server
    server.stop()
    database.drop()


@pytest.fixture
def api(harness_server: KartaServer):  # type: ignore[no-untyped-def]
    with harness_server.client() as client:
        yield client


def new_session(api) -> str:  # type: ignore[no-untyped-def]
    return str(api.post("/v1/sessions", json={}).json()["id"])


def test_streamed_turn_arrives_as_deltas(api, model):
    sid = new_session(api)
    model.enqueue(Reply([text("Harbour is our medium roast, with caramel notes.")]))
    events = stream_events(
        api, "POST", f"/v1/sessions/{sid}/messages", json={"text": "medium?", "stream": True}
    )
    chunks = [e for e in events if e.type == "text"]
    assert len(chunks) > 1 and all(e.data["delta"] for e in chunks)
    assert texts(events) == "Harbour is our medium roast, with caramel notes."
    assert events[-1].type == "done" and events[-1].data["status"] == "completed"
    assert events[-1].data["usage"]["output_tokens"] > 0
    assert "step_start" in [e.type for e in events]


def test_history_and_instructions_reach_the_model(api, model):
    sid = new_session(api)
    api.post(f"/v1/sessions/{sid}/messages", json={"text": "Order CONF-11 is late."})
    api.post(f"/v1/sessions/{sid}/messages", json={"text": "Which order?"})
    last = [r for r in model.requests if r.kind == "prompt"][-1]
    assert last.prompt == "Which order?"
    assert "CONF-11" in last.transcript_text and "Beans & Co." in last.transcript_text


@pytest.mark.parametrize("decision", ["approve_once", "deny"])
def test_a_tool_call_waits_for_the_decision(api, model, harness_server, flavour, decision):
    sid = new_session(api)
    model.enqueue([text("Noting."), flavour.write(f"notes/{decision}.md", "late\n")])
    model.enqueue([text("Handled.")])
    paused = api.post(f"/v1/sessions/{sid}/messages", json={"text": "note it"}).json()
    assert paused["status"] == "paused", paused
    note = harness_server.workspace(sid) / "notes" / f"{decision}.md"
    assert not note.exists()
    body = api.put(
        f"/v1/sessions/{sid}/inputs/{paused['pending_input']['request_id']}",
        json={"decision": decision},
    ).json()
    assert body["events"][-1]["type"] == "done"
    assert note.exists() == (decision == "approve_once")
    assert model.requests[-1].kind == "tool_result"
    if decision == "deny":
        assert model.requests[-1].tool_results[0]["content"]


def test_killed_harness_is_an_error_and_the_next_turn_resumes(api, model, harness_server):
    sid = new_session(api)
    api.post(f"/v1/sessions/{sid}/messages", json={"text": "Remember CRASH-3."})
    asked = len(model.requests)
    model.enqueue(Reply([text("never")], delay=30))
    events = []
    with api.stream(
        "POST", f"/v1/sessions/{sid}/messages", json={"text": "slow", "stream": True}
    ) as response:
        deadline = time.monotonic() + 20
        while len(model.requests) == asked and time.monotonic() < deadline:
            time.sleep(0.05)
        for proc in harness_processes(harness_server, sid):
            os.kill(proc.pid, signal.SIGKILL)
        events = list(iter_events(response.iter_lines()))
    assert [e.data["code"] for e in events if e.type == "error"][:1] == ["harness_crashed"]
    assert events[-1].data["status"] == "failed"
    model.reset()
    body = api.post(f"/v1/sessions/{sid}/messages", json={"text": "What to remember?"}).json()
    assert body["status"] == "completed", body
    assert "CRASH-3" in [r for r in model.requests if r.kind == "prompt"][-1].transcript_text


def test_resume_after_restart_and_idle_eviction(model, flavour, tmp_path):
    db = Database("sqlite")
    env = {"KARTA_HARNESS_IDLE_TIMEOUT": "1"}
    server = KartaServer(flavour.app, tmp_path / "home", model, db, env=env).start()
    try:
        with server.client() as api:
            sid = new_session(api)
            api.post(f"/v1/sessions/{sid}/messages", json={"text": "My code is EVICT-9."})
            deadline = time.monotonic() + 15
            while harness_processes(server, sid) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert harness_processes(server, sid) == [], "the idle harness was stopped"
            api.post(f"/v1/sessions/{sid}/messages", json={"text": "First check?"})
            assert "EVICT-9" in model.requests[-1].transcript_text
        server.restart()
        with server.client() as api:
            body = api.post(f"/v1/sessions/{sid}/messages", json={"text": "Second check?"}).json()
            assert body["status"] == "completed"
            prompts = [r for r in model.requests if r.kind == "prompt"]
            assert prompts[-1].prompt == "Second check?"
            assert "EVICT-9" in prompts[-1].transcript_text
    finally:
        server.stop()
        db.drop()


def pooled_harnesses(server: KartaServer) -> dict[str, int]:
    """The harness processes under the server, by the session folder they run in."""
    assert server.proc is not None
    sessions = server.home / "sessions"
    found = {}
    for child in psutil.Process(server.proc.pid).children(recursive=True):
        try:
            command, cwd = " ".join(child.cmdline()), Path(child.cwd())
        except psutil.Error:
            continue
        if cwd.parent.parent == sessions and ("claude" in command or "opencode" in command):
            found.setdefault(cwd.parent.name, child.pid)
    return found


def test_a_new_session_takes_a_prestarted_harness(model, flavour, tmp_path):
    db = Database("sqlite")
    env = {"KARTA_POOL_MIN": "1", "KARTA_POOL_MAX": "1"}
    server = KartaServer(flavour.app, tmp_path / "home", model, db, env=env).start()
    try:

        def pooled_ready() -> bool:
            return httpx.get(f"{server.url}/readyz").json()["harnesses"]["pooled"] == 1

        eventually(pooled_ready, "a pre-started harness", 60)
        ((pooled, pid),) = pooled_harnesses(server).items()
        assert model.requests == [], "a pooled harness calls no model"
        with server.client() as api:
            sid = new_session(api)
            assert sid == pooled, "the new session adopted the pre-started harness"
            body = api.post(f"/v1/sessions/{sid}/messages", json={"text": "Which roast?"}).json()
            assert body["status"] == "completed", body
            assert [p.pid for p in harness_processes(server, sid)][:1] == [pid]
            # What the process did while it waited (Claude Code is primed) left nothing in the
            # conversation: the model hears one user message, the session's first.
            (first,) = [r for r in model.requests if r.kind == "prompt"]
            users = [m for m in first.conversation["messages"] if m["role"] == "user"]
            assert first.prompt == "Which roast?" and len(users) == 1, first.conversation
            # The pool refills with a process of its own for the next session.
            eventually(lambda: set(pooled_harnesses(server)) - {sid}, "a refill", 60)
        processes = [psutil.Process(p) for p in pooled_harnesses(server).values()]
    finally:
        server.stop()
        db.drop()
    left = [p for p in processes if p.is_running() and p.status() != "zombie"]
    assert not left, [(p.pid, p.cwd(), pid, sid) for p in left]


def test_opencode_reaches_an_openai_compatible_endpoint_with_the_same_events(model, tmp_path):
    """A builder switches harness without touching model settings: OPENAI_* works too."""
    db = Database("sqlite")
    server = KartaServer(FLAVOURS["opencode"].app, tmp_path / "home", model, db, wire="openai")
    server.start()
    try:
        with server.client() as api:
            sid = new_session(api)
            model.enqueue([text("Midnight is the dark one.")])
            events = stream_events(
                api, "POST", f"/v1/sessions/{sid}/messages", json={"text": "dark?", "stream": True}
            )
        assert texts(events) == "Midnight is the dark one."
        assert {r.wire for r in model.requests} == {"openai"}
        # Metered by the model proxy: the answer and OpenCode's title call, 15 tokens each.
        assert events[-1].data["usage"]["total_tokens"] == 30
    finally:
        server.stop()
        db.drop()


def test_a_harness_that_died_while_idle_is_replaced_transparently(api, model, harness_server):
    sid = new_session(api)
    api.post(f"/v1/sessions/{sid}/messages", json={"text": "Keep IDLE-4 in mind."})
    for proc in harness_processes(harness_server, sid):
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    model.reset()
    events = stream_events(
        api, "POST", f"/v1/sessions/{sid}/messages", json={"text": "What was it?", "stream": True}
    )
    assert [e for e in events if e.type == "error"] == []
    assert events[-1].data["status"] == "completed"
    assert "IDLE-4" in [r for r in model.requests if r.kind == "prompt"][-1].transcript_text


def test_a_model_error_is_an_error_event_then_a_failed_done(api, model, flavour):
    sid = new_session(api)
    model.enqueue(error_reply(flavour.failing_status, "scripted failure"))
    events = stream_events(
        api, "POST", f"/v1/sessions/{sid}/messages", json={"text": "hi", "stream": True}
    )
    assert [e.type for e in events if e.type == "error"]
    assert events[-1].type == "done" and events[-1].data["status"] == "failed"
    body = api.post(f"/v1/sessions/{sid}/messages", json={"text": "again"}).json()
    assert body["status"] == "completed"
