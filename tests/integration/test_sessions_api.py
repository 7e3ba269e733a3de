"""The session API a client expects: listing with filters and cursors, interrupting a running
turn, reading the transcript — over HTTP, with the real Claude Code binary."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from karta.core.sse import iter_events
from karta.testing import Reply, text, tool_use
from tests.conftest import SUPPORT_BOT, Database, KartaServer
from tests.integration.test_planes import eventually

pytestmark = pytest.mark.harness


def new_session(api: Any, **metadata: Any) -> str:
    response = api.post("/v1/sessions", json={"metadata": metadata})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def listed(api: Any, **params: Any) -> list[str]:
    response = api.get("/v1/sessions", params=params)
    assert response.status_code == 200, response.text
    return [s["id"] for s in response.json()["data"]]


def test_listing_is_newest_first_filtered_and_paged(api):
    tag = new_session(api, team="listing")  # a marker: the module's server has other sessions
    mine = [new_session(api, team="listing", n=str(i)) for i in range(5)]
    other = new_session(api, team="elsewhere")
    assert listed(api, **{"metadata.team": "listing"}) == [*reversed(mine), tag]
    assert listed(api, **{"metadata.team": "listing", "metadata.n": "3"}) == [mine[3]]
    assert other not in listed(api, **{"metadata.team": "listing"})

    pages, after = [], None
    while True:
        params = {"metadata.team": "listing", "limit": 2, **({"after": after} if after else {})}
        page = api.get("/v1/sessions", params=params).json()
        pages.append([s["id"] for s in page["data"]])
        if not page["has_more"]:
            assert page["next_cursor"] is None
            break
        after = page["next_cursor"]
    assert pages == [[mine[4], mine[3]], [mine[2], mine[1]], [mine[0], tag]]

    assert api.delete(f"/v1/sessions/{mine[0]}").status_code == 204
    ended = listed(api, **{"metadata.team": "listing", "status": "ended"})
    assert ended == [mine[0]]
    assert mine[0] not in listed(api, **{"metadata.team": "listing", "status": "active"})
    assert listed(api, **{"metadata.team": "listing", "agent": "nobody"}) == []
    assert listed(api, **{"metadata.team": "listing", "agent": "triage", "limit": 1}) == [mine[4]]


def test_listing_refuses_bad_queries(api):
    assert api.get("/v1/sessions", params={"limit": 0}).status_code == 422
    assert api.get("/v1/sessions", params={"limit": 101}).status_code == 422
    assert api.get("/v1/sessions", params={"status": "dancing"}).status_code == 422
    unknown = api.get("/v1/sessions", params={"after": "sess_nope"})
    assert (unknown.status_code, unknown.json()["error"]) == (422, "invalid_cursor")


def test_interrupt_stops_a_turn_mid_model_call_and_the_session_goes_on(api, model):
    sid = new_session(api)
    assert api.post(f"/v1/sessions/{sid}/interrupt").json()["error"] == "no_turn_running"
    asked = len(model.requests)
    model.enqueue(Reply([text("never said")], delay=60))
    streamed: list[Any] = []

    def stream() -> None:
        with api.stream(
            "POST", f"/v1/sessions/{sid}/messages", json={"text": "slowly", "stream": True}
        ) as response:
            streamed.extend(iter_events(response.iter_lines()))

    reader = threading.Thread(target=stream)
    reader.start()
    eventually(lambda: len(model.requests) > asked, "the model to be asked")
    assert sid in listed(api, active="true")

    stopped = api.post(f"/v1/sessions/{sid}/interrupt")
    assert stopped.status_code == 200, stopped.text
    body = stopped.json()
    assert body["status"] == "cancelled" and body["session"]["turn_running"] is False
    reader.join(30)
    assert streamed[-1].type == "done" and streamed[-1].data["status"] == "cancelled"
    assert "never said" not in "".join(e.part.get("text", "") for e in streamed)
    assert sid not in listed(api, active="true")

    model.enqueue(Reply([text("Still here.")]))
    again = api.post(f"/v1/sessions/{sid}/messages", json={"text": "hello?"}).json()
    assert (again["status"], again["text"]) == ("completed", "Still here.")


def test_interrupt_while_waiting_for_an_approval_aborts_it(api, model):
    sid = new_session(api)
    model.enqueue(Reply([tool_use("Write", {"file_path": "notes/x", "content": "x"})]))
    paused = api.post(f"/v1/sessions/{sid}/messages", json={"text": "note it"}).json()
    assert paused["status"] == "paused"
    request_id = paused["pending_input"]["request_id"]

    stopped = api.post(f"/v1/sessions/{sid}/interrupt")
    assert stopped.status_code == 200, stopped.text
    assert stopped.json()["session"]["pending_input"] is None
    late = api.put(f"/v1/sessions/{sid}/inputs/{request_id}", json={"decision": "approve_once"})
    assert (late.status_code, late.json()["status"]) == (409, "aborted")

    model.enqueue(Reply([text("Ready.")]))
    again = api.post(f"/v1/sessions/{sid}/messages", json={"text": "next"}).json()
    assert again["status"] == "completed"


def test_follow_keeps_the_event_stream_open_across_turns(api, model):
    sid = new_session(api)
    seen: list[Any] = []

    def follow() -> None:
        with api.stream("GET", f"/v1/sessions/{sid}/events", params={"follow": "true"}) as r:
            for event in iter_events(r.iter_lines()):
                seen.append(event)
                if sum(e.type == "done" for e in seen) == 2:
                    return

    reader = threading.Thread(target=follow)
    reader.start()
    for answer in ("One.", "Two."):
        model.enqueue(Reply([text(answer)]))
        assert api.post(f"/v1/sessions/{sid}/messages", json={"text": "go"}).status_code == 200
    reader.join(60)
    assert not reader.is_alive()
    turns = {e.turn_id for e in seen}
    assert len(turns) == 2
    assert "".join(e.part.get("text", "") for e in seen if e.type == "text") == "One.Two."
    assert [e.seq for e in seen] == sorted({e.seq for e in seen})


def test_a_turn_beyond_the_harness_cap_is_a_503_before_it_runs(model, tmp_path):
    server = KartaServer(
        SUPPORT_BOT, tmp_path, model, Database("sqlite"), env={"KARTA_MAX_LIVE_HARNESSES": "1"}
    ).start()
    try:
        with server.client() as api:
            busy, other = new_session(api), new_session(api)
            asked = len(model.requests)
            model.enqueue(Reply([text("slow")], delay=30))
            started = threading.Thread(
                target=api.post,
                args=(f"/v1/sessions/{busy}/messages",),
                kwargs={"json": {"text": "x"}},
            )
            started.start()
            eventually(lambda: len(model.requests) > asked, "the model to be asked")
            refused = api.post(f"/v1/sessions/{other}/messages", json={"text": "y"})
            assert refused.status_code == 503, refused.text
            assert refused.json()["error"] == "harness_capacity"
            assert int(refused.headers["Retry-After"]) >= 1
            assert api.get(f"/v1/sessions/{other}").json()["last_event_seq"] == 0, "nothing ran"
            # A stateless adapter call refused at the cap leaves no session of its own behind.
            project = "/v1/projects/support-bot"
            active = {"status": "active", "limit": 100}
            before = api.get(f"{project}/sessions", params=active).json()["data"]
            chat = api.post(
                f"{project}/chat/completions", json={"messages": [{"role": "user", "content": "z"}]}
            )
            assert chat.status_code == 503 and chat.json()["error"]["code"] == "harness_capacity"
            assert api.get(f"{project}/sessions", params=active).json()["data"] == before
            assert api.post(f"/v1/sessions/{busy}/interrupt").status_code == 200
            started.join(30)
    finally:
        server.stop()


def test_the_transcript_is_read_from_the_harness_and_paged(api, model):
    sid = new_session(api)
    assert api.get(f"/v1/sessions/{sid}/messages").json()["data"] == []
    model.enqueue(Reply([text("Sunrise is light.")]))
    api.post(f"/v1/sessions/{sid}/messages", json={"text": "Which roast is light?"})
    model.enqueue(Reply([tool_use("Write", {"file_path": "notes/n", "content": "x"})]))
    model.enqueue(Reply([text("Noted.")]))
    paused = api.post(f"/v1/sessions/{sid}/messages", json={"text": "Note it."}).json()
    request_id = paused["pending_input"]["request_id"]
    api.put(f"/v1/sessions/{sid}/inputs/{request_id}", json={"decision": "approve_once"})

    page = api.get(f"/v1/sessions/{sid}/messages").json()
    messages = page["data"]
    assert [m["role"] for m in messages][:2] == ["user", "assistant"]
    assert messages[0]["text"] == "Which roast is light?"
    assert messages[1]["text"] == "Sunrise is light."
    assert any(m["role"] == "user" and m["text"] == "Note it." for m in messages)
    tools = [p for m in messages for p in m["parts"] if p["type"] == "tool"]
    assert [(t["tool"], t["status"]) for t in tools] == [("Write", "completed")]
    assert messages[-1]["role"] == "assistant" and messages[-1]["text"] == "Noted."

    first = api.get(f"/v1/sessions/{sid}/messages", params={"limit": 1}).json()
    assert first["has_more"] and [m["id"] for m in first["data"]] == [messages[0]["id"]]
    rest = api.get(
        f"/v1/sessions/{sid}/messages", params={"after": first["next_cursor"], "limit": 1000}
    ).json()
    assert [m["id"] for m in rest["data"]] == [m["id"] for m in messages[1:]]
    unknown = api.get(f"/v1/sessions/{sid}/messages", params={"after": "nope"})
    assert (unknown.status_code, unknown.json()["error"]) == (422, "invalid_cursor")
