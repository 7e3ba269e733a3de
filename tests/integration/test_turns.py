"""Streamed and unary turns, history, agent routing, handoff and participants — through HTTP,
with the real Claude Code binary and the scripted model."""

from __future__ import annotations

import pytest

from karta.testing import Reply, text
from tests.conftest import stream_events, texts

pytestmark = pytest.mark.harness


def new_session(api, **body):  # type: ignore[no-untyped-def]
    response = api.post("/v1/sessions", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def test_streamed_turn_yields_typed_deltas_ending_with_done(api, model):
    session = new_session(api, metadata={"customer": "c-42"})
    assert session["id"].startswith("sess_")
    assert session["current_agent"] == "triage"
    model.enqueue(Reply([text("Sunrise is our light roast from Ethiopia, lovely as filter.")]))

    events = stream_events(
        api,
        "POST",
        f"/v1/sessions/{session['id']}/messages",
        json={"text": "Which roast is light?", "stream": True},
    )

    kinds = [e.type for e in events]
    assert kinds[-1] == "done" and kinds.count("done") == 1
    assert "step_start" in kinds and "step_finish" in kinds
    chunks = [e for e in events if e.type == "text"]
    assert len(chunks) > 1, "text must arrive as several deltas"
    assert all(e.data["delta"] is True for e in chunks)
    assert texts(events) == "Sunrise is our light roast from Ethiopia, lovely as filter."
    seqs = [e.seq for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    done = events[-1]
    assert done.data["status"] == "completed"
    assert done.data["usage"]["input_tokens"] > 0 and done.data["usage"]["output_tokens"] > 0
    assert all(e.session_id == session["id"] for e in events)


def test_unary_turn_returns_the_accumulated_message(api, model):
    session = new_session(api)
    model.enqueue(Reply([text("Orders ship within two working days.")]))

    response = api.post(
        f"/v1/sessions/{session['id']}/messages",
        json={
            "text": "When do you ship?",
            "participant_name": "alice",
            "participant_type": "human",
        },
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "completed"
    assert body["text"] == "Orders ship within two working days."
    assert body["agent"] == "triage"
    user, assistant = body["messages"]
    assert user["role"] == "user" and user["text"] == "When do you ship?"
    assert user["participant_name"] == "alice" and user["participant_type"] == "human"
    assert assistant["role"] == "assistant" and assistant["text"] == body["text"]
    assert body["usage"]["total_tokens"] == (
        body["usage"]["input_tokens"] + body["usage"]["output_tokens"]
    )
    fetched = api.get(f"/v1/sessions/{session['id']}").json()
    [alice] = fetched["participants"]
    assert (alice["id"], alice["type"], alice["display_name"]) == ("alice", "human", "alice")
    assert alice["joined_at"] and alice["left_at"] is None
    assert fetched["turn_running"] is False


def test_the_model_hears_who_is_speaking_in_a_shared_session(api, model):
    session = new_session(
        api,
        participants=[
            {"id": "alice", "type": "human", "display_name": "Alice Chen"},
            {"id": "bob", "type": "human", "display_name": "Bob Park"},
        ],
    )
    sid = session["id"]
    api.post(
        f"/v1/sessions/{sid}/messages", json={"text": "Hi, I am new.", "participant_name": "alice"}
    )
    events = stream_events(
        api,
        "POST",
        f"/v1/sessions/{sid}/messages",
        json={"text": "Me too.", "participant_name": "bob", "stream": True},
    )

    last = model.requests[-1]
    assert last.prompt == "[Bob Park (@bob, human)]: Me too."
    assert "[Alice Chen (@alice, human)]: Hi, I am new." in last.transcript_text
    assert {(e.participant_name, e.participant_type) for e in events} == {("bob", "human")}
    assert events[0].type == "message" and events[0].data["text"] == "Me too."


def test_history_and_claude_md_reach_the_model(api, model):
    session = new_session(api)
    api.post(f"/v1/sessions/{session['id']}/messages", json={"text": "My order id is ZED-991."})
    api.post(f"/v1/sessions/{session['id']}/messages", json={"text": "What was my order id?"})

    last = model.requests[-1]
    assert last.prompt == "What was my order id?"
    assert "ZED-991" in last.transcript_text, "the earlier turn must be in the harness history"
    assert "Beans & Co." in last.transcript_text, "CLAUDE.md must reach the model"


def test_routing_a_turn_hands_off_to_that_agent(api, model):
    session = new_session(api)
    sid = session["id"]

    events = stream_events(
        api,
        "POST",
        f"/v1/sessions/{sid}/messages",
        json={"text": "I was charged twice", "agent": "billing", "stream": True},
    )

    handoffs = [e for e in events if e.type == "system" and e.data.get("subtype") == "handoff"]
    assert [(h.data["from"], h.data["to"]) for h in handoffs] == [("triage", "billing")]
    assert "You handle billing for Beans & Co." in model.requests[-1].transcript_text
    assert api.get(f"/v1/sessions/{sid}").json()["current_agent"] == "billing"

    # The handoff sticks: the next turn without `agent` stays with billing, history intact.
    body = api.post(f"/v1/sessions/{sid}/messages", json={"text": "Any news?"}).json()
    assert body["agent"] == "billing"
    assert "I was charged twice" in model.requests[-1].transcript_text

    # Handing back: the conversation continues and triage's instructions reach the model.
    back = api.post(f"/v1/sessions/{sid}/messages", json={"text": "Roasts?", "agent": "triage"})
    assert back.json()["agent"] == "triage"
    last = model.requests[-1]
    assert last.prompt == "Roasts?"
    assert 'act as the "triage" agent' in last.transcript_text
    assert "You are the first point of contact" in last.transcript_text.split("Any news?")[-1]
    assert "I was charged twice" in last.transcript_text
    tools = {tool["name"] for tool in last.body["tools"]}
    assert "Glob" in tools, "triage's tool list applies again"
