"""Three data-plane replicas on PostgreSQL and Redis behind a round-robin proxy, on real
processes and the real Claude Code harness: a session created through replica 1 is streamed
from replica 2 and approved through replica 3; replica 1, its owner, is killed with SIGKILL
mid-turn; the stream reports `harness_crashed`, the next turn succeeds on a survivor with the
conversation intact, no subscriber loses or repeats an event, and usage counts exactly once."""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from karta.core.events import Event
from karta.core.sse import iter_events
from karta.testing import ScriptedModel, text, tool_use
from karta.testing.anthropic_wire import DEFAULT_USAGE
from tests.cluster import Replicas, redis_or_skip
from tests.conftest import Database

pytestmark = [pytest.mark.harness, pytest.mark.postgres]


def eventually(check: Any, what: str, timeout: float = 60.0) -> Any:
    """Poll `check` until it returns something truthy (never asserts on elapsed time)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


class Subscriber:
    """Follows a session's events on one URL in a thread; on a broken connection, reconnects
    (through `fallback`) with Last-Event-ID, as an SSE client does."""

    def __init__(self, url: str, key: str, sid: str, fallback: str | None = None) -> None:
        self.urls = [url] + ([fallback] if fallback else [])
        self.key, self.sid = key, sid
        self.events: list[Event] = []
        self.reconnects = 0
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        url = self.urls[0]
        while not self.stopped.is_set():
            headers = {"Authorization": f"Bearer {self.key}"}
            if self.events:
                headers["Last-Event-ID"] = str(self.events[-1].seq)
            try:
                with (
                    httpx.Client(base_url=url, headers=headers, timeout=None) as client,
                    client.stream(
                        "GET", f"/v1/sessions/{self.sid}/events", params={"follow": "true"}
                    ) as response,
                ):
                    for event in iter_events(response.iter_lines()):
                        self.events.append(event)
                        if self.stopped.is_set():
                            return
            except httpx.HTTPError:
                pass
            if self.stopped.is_set():
                return
            self.reconnects += 1
            url = self.urls[-1]
            time.sleep(0.2)

    def seqs(self) -> list[int]:
        return [e.seq or 0 for e in self.events]

    def saw(self, predicate: Any) -> bool:
        return any(predicate(e) for e in list(self.events))


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[tuple[Replicas, ScriptedModel]]:
    redis_url = redis_or_skip()
    database = Database("postgres")
    with ScriptedModel() as model:
        cluster = Replicas(tmp_path, model, database, redis_url).start()
        try:
            yield cluster, model
        finally:
            cluster.stop()
            database.drop()


def api(url: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120)


def usage_totals(cluster: Replicas, key: str) -> dict[str, int]:
    response = httpx.get(
        f"{cluster.control_url}/v1/usage", headers={"Authorization": f"Bearer {key}"}
    )
    assert response.status_code == 200, response.text
    return dict(response.json()["totals"])


def write_tool(name: str) -> list[dict[str, Any]]:
    return [text("Let me note that."), tool_use("Write", {"file_path": name, "content": "x\n"})]


def test_an_owner_killed_mid_turn_loses_nothing_but_that_turn(replicas):
    cluster, model = replicas
    key = cluster.signup(f"replicas-{secrets.token_hex(3)}")
    r1, r2, r3 = (api(cluster.url(i), key) for i in range(3))
    lb = api(cluster.proxy.url, key)

    sid = r1.post("/v1/sessions", json={}).json()["id"]
    followers = [
        Subscriber(cluster.url(1), key, sid),  # on replica 2, from the start
        Subscriber(cluster.url(0), key, sid, fallback=cluster.proxy.url),  # on the owner
    ]

    # Turn 1 runs on replica 1 (it claims the session), pauses for an approval that arrives
    # through replica 3, and finishes.
    model.enqueue(write_tool("notes/one.md"))
    model.enqueue([text("Saved the first note.")])
    paused = r1.post(f"/v1/sessions/{sid}/messages", json={"text": "note one"}).json()
    assert paused["status"] == "paused", paused
    assert (
        r2.get(f"/v1/sessions/{sid}").json()["pending_input"]["request_id"]
        == (paused["pending_input"]["request_id"])
    ), "every replica sees the pending input"
    busy = r3.post(f"/v1/sessions/{sid}/messages", json={"text": "hello?"})
    assert (busy.status_code, busy.json()["error"]) == (409, "pending_input"), "relayed"
    decided = r3.put(
        f"/v1/sessions/{sid}/inputs/{paused['pending_input']['request_id']}",
        json={"decision": "approve_once"},
    )
    assert decided.status_code == 200, decided.text
    assert decided.json()["events"][-1]["data"]["status"] == "completed"
    assert (cluster.home / "shared" / "sessions" / sid / "workspace" / "notes/one.md").exists()
    late = Subscriber(cluster.url(2), key, sid)  # joins on replica 3 between turns

    # Turn 2 pauses on replica 1 too; replica 1 is killed while it waits.
    model.enqueue(write_tool("notes/two.md"))
    second = r1.post(f"/v1/sessions/{sid}/messages", json={"text": "note two"}).json()
    assert second["status"] == "paused", second
    turn2 = second["turn_id"]
    # Claude Code writes its transcript behind the conversation: the kill comes once it holds
    # the paused turn's message (what a crash before that loses is the harness's to lose).
    state = cluster.home / "shared" / "sessions" / sid / "state"
    eventually(
        lambda: any("note two" in f.read_text() for f in state.rglob("*.jsonl")),
        "Claude Code to write the paused turn to its transcript",
    )
    cluster.kill(0)

    crashed = eventually(
        lambda: followers[0].saw(lambda e: e.type == "done" and e.turn_id == turn2),
        "the stream on replica 2 to report the end of the killed turn",
    )
    assert crashed
    errors = [e for e in followers[0].events if e.type == "error" and e.turn_id == turn2]
    assert [e.data["code"] for e in errors] == ["harness_crashed"]
    done = next(e for e in followers[0].events if e.type == "done" and e.turn_id == turn2)
    assert done.data["status"] == "failed"
    view = r2.get(f"/v1/sessions/{sid}").json()
    assert view["pending_input"] is None and view["turn_running"] is False
    stale = r3.put(
        f"/v1/sessions/{sid}/inputs/{second['pending_input']['request_id']}",
        json={"decision": "approve_once"},
    )
    assert (stale.status_code, stale.json()["error"]) == (409, "input_not_pending")

    # Turn 3 through the load balancer: a survivor resumes the conversation from the
    # transcript on the shared volume.
    model.enqueue([text("Both notes are in the conversation.")])
    third = lb.post(f"/v1/sessions/{sid}/messages", json={"text": "what did we do?"})
    assert third.status_code == 200, third.text
    assert third.json()["status"] == "completed", third.json()
    history = json.dumps(model.requests[-1].conversation["messages"])
    assert "note one" in history and "Saved the first note." in history and "note two" in history
    transcript = lb.get(f"/v1/sessions/{sid}/messages").json()["data"]
    assert "Both notes are in the conversation." in [m["text"] for m in transcript]

    # Every subscriber saw every event once, in order: the log as any replica replays it.
    log_seqs = [
        e.seq
        for e in iter_events(
            lb.get(f"/v1/sessions/{sid}/events", params={"after": 0}).text.splitlines()
        )
    ]
    assert log_seqs == list(range(1, len(log_seqs) + 1))
    last = log_seqs[-1]
    for follower in [*followers, late]:
        eventually(lambda f=follower: f.seqs() and f.seqs()[-1] == last, "followers to catch up")
        follower.stopped.set()
    assert followers[0].seqs() == log_seqs
    assert followers[1].reconnects >= 1 and followers[1].seqs() == log_seqs
    assert late.seqs() == log_seqs

    # Usage: every model call the harness made, counted once, whichever replica shipped it.
    calls = len(model.requests)
    expected = {
        "input_tokens": calls * DEFAULT_USAGE["input_tokens"],
        "output_tokens": calls * DEFAULT_USAGE["output_tokens"],
    }
    eventually(
        lambda: {k: usage_totals(cluster, key)[k] for k in expected} == expected,
        f"usage of {calls} model calls to reach the ledger",
    )
    time.sleep(2 * cluster.lease_ttl)  # nothing ships twice later (every shipper ran again)
    assert {k: usage_totals(cluster, key)[k] for k in expected} == expected


def test_the_control_plane_pushes_invalidations_to_every_replica(replicas):
    cluster, _ = replicas
    admin = cluster.signup(f"revoke-{secrets.token_hex(3)}")
    with api(cluster.control_url, admin) as control:
        created = control.post("/v1/keys", json={"name": "doomed", "scopes": ["write"]}).json()
        for index in range(3):
            with api(cluster.url(index), created["secret"]) as client:
                assert client.get("/v1/sessions").status_code == 200  # cached on each replica
        assert control.delete(f"/v1/keys/{created['api_key']['id']}").status_code == 200
    for index in range(3):
        with api(cluster.url(index), created["secret"]) as client:
            refused = client.get("/v1/sessions")
            assert refused.status_code == 401, (index, refused.text)
