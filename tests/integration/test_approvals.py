"""Approvals pause the live turn: approve once, approve for the session, deny, expiry, and the
409s around them — on a real Write tool call."""

from __future__ import annotations

import pytest

from karta.core.sse import iter_events
from karta.testing import text, tool_use
from tests.conftest import SUPPORT_BOT, Database, KartaServer, texts

pytestmark = pytest.mark.harness


def script_write(model, name: str, content: str = "refund requested\n") -> None:  # type: ignore[no-untyped-def]
    model.enqueue(
        [
            text("Let me note that."),
            tool_use("Write", {"file_path": f"notes/{name}", "content": content}),
        ]
    )
    model.enqueue([text("Noted.")])


def session_id(api) -> str:  # type: ignore[no-untyped-def]
    return str(api.post("/v1/sessions", json={}).json()["id"])


def test_approve_once_resumes_the_same_turn_and_writes_the_file(api, model, server):
    sid = session_id(api)
    script_write(model, "a1.md")

    paused = api.post(f"/v1/sessions/{sid}/messages", json={"text": "log a note"}).json()

    assert paused["status"] == "paused"
    pending = paused["pending_input"]
    assert pending["tool"] == "Write" and pending["request_id"].startswith("req_")
    assert pending["options"] == ["approve_once", "approve_session", "deny"]
    assert pending["target"].endswith("notes/a1.md")
    note = server.workspace(sid) / "notes" / "a1.md"
    assert not note.exists(), "nothing may run before the approval"
    session = api.get(f"/v1/sessions/{sid}").json()
    assert session["pending_input"]["request_id"] == pending["request_id"]
    busy = api.post(f"/v1/sessions/{sid}/messages", json={"text": "hello?"})
    assert busy.status_code == 409 and busy.json()["error"] == "pending_input"

    decided = api.put(
        f"/v1/sessions/{sid}/inputs/{pending['request_id']}", json={"decision": "approve_once"}
    )

    assert decided.status_code == 200, decided.text
    body = decided.json()
    kinds = [e["type"] for e in body["events"]]
    assert kinds[-1] == "done" and body["events"][-1]["data"]["status"] == "completed"
    tool_done = [
        e
        for e in body["events"]
        if e["type"] == "tool_use" and e["data"]["part"]["state"]["status"] == "completed"
    ]
    assert tool_done, "the continuation carries the tool's result"
    assert body["session"]["pending_input"] is None
    assert body["session"]["permission_mode"] is None
    assert note.read_text() == "refund requested\n"
    assert model.requests[-1].kind == "tool_result"
    # A decision is final: deciding again is a conflict, an unknown id is not found.
    again = api.put(f"/v1/sessions/{sid}/inputs/{pending['request_id']}", json={"decision": "deny"})
    assert again.status_code == 409 and again.json()["error"] == "input_not_pending"
    missing = api.put(f"/v1/sessions/{sid}/inputs/req_nope", json={"decision": "deny"})
    assert missing.status_code == 404 and missing.json()["error"] == "input_not_found"


def test_deny_lets_the_agent_continue_without_the_tool(api, model, server):
    sid = session_id(api)
    script_write(model, "d1.md")
    pending = api.post(f"/v1/sessions/{sid}/messages", json={"text": "log"}).json()["pending_input"]

    body = api.put(
        f"/v1/sessions/{sid}/inputs/{pending['request_id']}", json={"decision": "deny"}
    ).json()

    assert body["events"][-1]["type"] == "done"
    assert not (server.workspace(sid) / "notes" / "d1.md").exists()
    result = model.requests[-1].tool_results[0]
    assert result["is_error"] is True and "denied" in result["content"].lower()


def test_approve_session_stops_asking_for_the_rest_of_the_session(api, model, server):
    sid = session_id(api)
    script_write(model, "s1.md")
    pending = api.post(f"/v1/sessions/{sid}/messages", json={"text": "log"}).json()["pending_input"]
    body = api.put(
        f"/v1/sessions/{sid}/inputs/{pending['request_id']}", json={"decision": "approve_session"}
    ).json()
    assert body["session"]["permission_mode"] == "approve_session"

    script_write(model, "s2.md")
    second = api.post(f"/v1/sessions/{sid}/messages", json={"text": "log again"}).json()

    assert second["status"] == "completed" and second["pending_input"] is None
    assert (server.workspace(sid) / "notes" / "s1.md").exists()
    assert (server.workspace(sid) / "notes" / "s2.md").exists()


def test_an_open_stream_stays_open_across_the_approval(api, model, server):
    sid = session_id(api)
    script_write(model, "st.md")
    seen: list[str] = []
    with api.stream(
        "POST", f"/v1/sessions/{sid}/messages", json={"text": "log", "stream": True}
    ) as response:
        for event in iter_events(response.iter_lines()):
            seen.append(event.type)
            if event.type == "input_required":
                with server.client() as other:
                    other.put(
                        f"/v1/sessions/{sid}/inputs/{event.data['request_id']}",
                        json={"decision": "approve_once"},
                    )
    assert seen.index("input_required") < seen.index("done")
    assert seen[-1] == "done"
    assert (server.workspace(sid) / "notes" / "st.md").exists()


def test_an_unanswered_approval_expires_and_the_wait_is_kept_alive(model, database, tmp_path):
    db = Database(database.kind)
    env = {"KARTA_APPROVAL_TTL": "1", "KARTA_SSE_KEEPALIVE": "0.2"}
    server = KartaServer(SUPPORT_BOT, tmp_path / "home", model, db, env=env).start()
    try:
        with server.client() as api:
            sid = session_id(api)
            script_write(model, "late.md")
            pending = api.post(f"/v1/sessions/{sid}/messages", json={"text": "log"}).json()[
                "pending_input"
            ]
            with api.stream("GET", f"/v1/sessions/{sid}/events", params={"after": 0}) as response:
                lines = list(response.iter_lines())
            assert ": keep-alive" in lines, "a waiting stream sends keep-alive comments"
            events = list(iter_events(lines))
            assert [e.data.get("code") for e in events if e.type == "error"] == ["approval_expired"]
            assert events[-1].type == "done"
            assert not (server.workspace(sid) / "notes" / "late.md").exists()
            late = api.put(
                f"/v1/sessions/{sid}/inputs/{pending['request_id']}",
                json={"decision": "approve_once"},
            )
            assert late.status_code == 409
            assert api.get(f"/v1/sessions/{sid}").json()["pending_input"] is None
            assert "Noted." in texts(events)
    finally:
        server.stop()
        db.drop()
