"""Faults are tested, not hoped about: dropped connections, restarts, a killed harness process,
idle eviction — and the conversation always continues."""

from __future__ import annotations

import os
import signal
import time

import psutil
import pytest

from karta.core.sse import iter_events
from karta.testing import Reply, text, tool_use
from tests.conftest import SUPPORT_BOT, Database, KartaServer, stream_events, texts

pytestmark = pytest.mark.harness

LONG = "Harbour is a medium roast from Colombia with notes of caramel and red apple. " * 3


def harness_processes(server: KartaServer, session_id: str) -> list[psutil.Process]:
    workspace = str(server.workspace(session_id))
    assert server.proc is not None
    found = []
    for child in psutil.Process(server.proc.pid).children(recursive=True):
        try:
            command = " ".join(child.cmdline())
            if child.cwd() == workspace and ("claude" in command or "opencode" in command):
                found.append(child)
        except psutil.Error:
            continue
    return found


def test_reconnect_with_last_event_id_loses_nothing_and_repeats_nothing(api, model):
    sid = api.post("/v1/sessions", json={}).json()["id"]
    model.enqueue(Reply([text(LONG)], chunk_delay=0.05))

    first: list = []
    with api.stream(
        "POST",
        f"/v1/sessions/{sid}/messages",
        json={"text": "Tell me about Harbour", "stream": True},
    ) as response:
        for event in iter_events(response.iter_lines()):
            first.append(event)
            if sum(e.type == "text" for e in first) == 2:
                break  # the client drops mid-turn

    rest = stream_events(
        api, "GET", f"/v1/sessions/{sid}/events", headers={"Last-Event-ID": str(first[-1].seq)}
    )

    seqs = [e.seq for e in first + rest]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "contiguous, no gaps, no repeats"
    assert texts(first + rest) == LONG
    assert rest[-1].type == "done"
    # ?after= is the same cursor; replaying a finished turn closes at its end.
    replay = stream_events(api, "GET", f"/v1/sessions/{sid}/events", params={"after": 0})
    assert [e.seq for e in replay] == list(range(1, seqs[-1] + 1))


def test_a_second_message_during_a_turn_is_a_conflict(api, model):
    sid = api.post("/v1/sessions", json={}).json()["id"]
    model.enqueue(Reply([text("slow answer")], delay=1.5))
    with api.stream(
        "POST", f"/v1/sessions/{sid}/messages", json={"text": "slow", "stream": True}
    ) as response:
        busy = api.post(f"/v1/sessions/{sid}/messages", json={"text": "me too"})
        assert busy.status_code == 409 and busy.json()["error"] == "turn_in_progress"
        events = list(iter_events(response.iter_lines()))
    assert texts(events) == "slow answer"


def test_killed_harness_mid_turn_reports_an_error_and_the_session_recovers(api, model, server):
    sid = api.post("/v1/sessions", json={}).json()["id"]
    api.post(f"/v1/sessions/{sid}/messages", json={"text": "My order is KILL-7."})
    model.enqueue(Reply([text("never delivered")], delay=30))

    asked = len(model.requests)
    events = []
    with api.stream(
        "POST", f"/v1/sessions/{sid}/messages", json={"text": "slow one", "stream": True}
    ) as response:
        for event in iter_events(response.iter_lines()):
            events.append(event)
            if event.type == "system" and event.data.get("status") == "requesting":
                deadline = time.monotonic() + 20
                while len(model.requests) == asked and time.monotonic() < deadline:
                    time.sleep(0.05)  # the harness is now waiting on the (slow) model
                for proc in harness_processes(server, sid):
                    os.kill(proc.pid, signal.SIGKILL)

    errors = [e for e in events if e.type == "error"]
    assert errors and errors[0].data["code"] == "harness_crashed"
    assert events[-1].type == "done" and events[-1].data["status"] == "failed"

    model.enqueue([text("Your order is KILL-7.")])
    body = api.post(f"/v1/sessions/{sid}/messages", json={"text": "What is my order?"}).json()
    assert body["status"] == "completed" and body["text"] == "Your order is KILL-7."
    assert "KILL-7" in model.requests[-1].transcript_text, "resumed from the harness transcript"


@pytest.mark.parametrize("crash", [False, True], ids=["graceful", "crash"])
def test_restart_resumes_sessions_and_ends_interrupted_turns(model, database, tmp_path, crash):
    db = Database(database.kind)
    server = KartaServer(SUPPORT_BOT, tmp_path / "home", model, db).start()
    try:
        with server.client() as api:
            sid = api.post("/v1/sessions", json={"metadata": {"k": "v"}}).json()["id"]
            api.post(f"/v1/sessions/{sid}/messages", json={"text": "Remember RESTART-55."})
            other = api.post("/v1/sessions", json={}).json()["id"]
            model.enqueue([tool_use("Write", {"file_path": "x.md", "content": "x"})])
            pending = api.post(f"/v1/sessions/{other}/messages", json={"text": "write"}).json()[
                "pending_input"
            ]
            assert pending is not None

        server.restart(crash=crash)

        with server.client() as api:
            session = api.get(f"/v1/sessions/{sid}").json()
            assert session["metadata"] == {"k": "v"}
            body = api.post(f"/v1/sessions/{sid}/messages", json={"text": "What number?"}).json()
            assert body["status"] == "completed"
            assert "RESTART-55" in model.requests[-1].transcript_text
            # The paused turn did not survive the restart: its log says so, the approval is stale.
            stale = api.put(
                f"/v1/sessions/{other}/inputs/{pending['request_id']}",
                json={"decision": "approve_once"},
            )
            assert stale.status_code == 409
            log = stream_events(api, "GET", f"/v1/sessions/{other}/events")
            expected = "turn_aborted" if crash else "turn_cancelled"
            assert [e.data.get("code") for e in log if e.type == "error"] == [expected]
            assert log[-1].type == "done" and log[-1].data["status"] != "completed"
            assert api.get(f"/v1/sessions/{other}").json()["pending_input"] is None
            model.enqueue([text("fresh start")])
            again = api.post(f"/v1/sessions/{other}/messages", json={"text": "hi"}).json()
            assert again["text"] == "fresh start"
    finally:
        server.stop()
        db.drop()


def test_idle_harnesses_are_evicted_and_resumed(model, tmp_path):
    db = Database("sqlite")
    server = KartaServer(
        SUPPORT_BOT,
        tmp_path / "home",
        model,
        db,
        env={"KARTA_HARNESS_IDLE_TIMEOUT": "1", "KARTA_MAX_LIVE_HARNESSES": "1"},
    )
    server.start()
    try:
        with server.client() as api:
            a = api.post("/v1/sessions", json={}).json()["id"]
            b = api.post("/v1/sessions", json={}).json()["id"]
            api.post(f"/v1/sessions/{a}/messages", json={"text": "A is EVICT-1"})
            assert len(harness_processes(server, a)) == 1
            # The cap is one live harness: b's turn closes a's.
            api.post(f"/v1/sessions/{b}/messages", json={"text": "B is EVICT-2"})
            assert harness_processes(server, a) == []
            deadline = time.monotonic() + 15
            while harness_processes(server, b) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert harness_processes(server, b) == [], "idle harness closed after the timeout"
            api.post(f"/v1/sessions/{a}/messages", json={"text": "Who is A?"})
            assert "EVICT-1" in model.requests[-1].transcript_text
    finally:
        server.stop()
        db.drop()
