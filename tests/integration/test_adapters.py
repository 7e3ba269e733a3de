"""The consumer adapters with the official OpenAI and Anthropic SDKs pointed at a real
`karta serve` (real Claude Code, scripted model): unary, streaming, continuation, a tool call
and an approval through the managed-agents surface, an interrupt, and each SDK's exceptions
for Karta's refusals; plus raw-HTTP checks of each wire format."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import anthropic
import httpx
import openai
import pytest

from karta.dataplane.adapters.common import with_history
from karta.dataplane.adapters.managed_agents import MESSAGE
from karta.testing import Reply, text, tool_use
from tests.conftest import KartaServer
from tests.integration.test_planes import PROJECT, bearer, eventually, signup
from tests.integration.test_resilience import harness_processes

pytestmark = pytest.mark.harness


def base(server: KartaServer) -> str:
    return f"{server.url}/v1/projects/{PROJECT}"


def oai(server: KartaServer, key: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(base_url=base(server), api_key=key or server.api_key, timeout=120)


def claude(server: KartaServer, key: str | None = None) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=f"{base(server)}/anthropic", api_key=key or server.api_key, timeout=120
    )


def prompts(model: Any) -> list[Any]:
    return [r for r in model.requests if r.kind == "prompt"]


def sse_frames(response: httpx.Response) -> list[tuple[str | None, str | None, Any]]:
    """(id, event, data) of each frame; data is JSON unless it is `[DONE]`."""
    frames, fid, name, data = [], None, None, None
    for line in response.iter_lines():
        if line == "":
            if data is not None:
                frames.append((fid, name, data if data == "[DONE]" else json.loads(data)))
            fid, name, data = None, None, None
        elif line.startswith("id: "):
            fid = line[4:]
        elif line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            data = line[6:]
    return frames


# --- OpenAI Chat Completions ----------------------------------------------------------------


def test_chat_completions_unary_stream_and_continuation(server, model):
    client = oai(server)
    model.enqueue(Reply([text("Remembered: MANGO-7.")]))
    first = client.chat.completions.with_raw_response.create(
        model="gpt-whatever", messages=[{"role": "user", "content": "Remember MANGO-7."}]
    )
    completion = first.parse()
    session_id = first.headers["x-karta-session-id"]
    assert completion.choices[0].message.content == "Remembered: MANGO-7."
    assert completion.choices[0].finish_reason == "stop"
    assert completion.object == "chat.completion" and completion.model == "gpt-whatever"
    assert completion.usage is not None and completion.usage.prompt_tokens > 0
    usage = completion.usage
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert completion.model_extra["karta_session_id"] == session_id
    # The call opened its session and continues no conversation: no process stays behind.
    eventually(lambda: not harness_processes(server, session_id), "the harness to close")

    model.enqueue(
        Reply([text("You asked me to remember MANGO-7, in many chunks.")], chunk_delay=0.01)
    )
    chunks = list(
        client.chat.completions.create(
            model="gpt-whatever",
            messages=[
                {"role": "user", "content": "Remember MANGO-7."},
                {"role": "assistant", "content": "Remembered: MANGO-7."},
                {"role": "user", "content": "What did I ask?"},
            ],
            metadata={"karta_session_id": session_id},
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    deltas = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    assert "".join(deltas) == "You asked me to remember MANGO-7, in many chunks."
    assert len([d for d in deltas if d]) > 1, "text arrives as several deltas"
    finish = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finish == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    # Only the newest user text went to the harness; it resumed the same conversation, and
    # stays warm for the next call that continues it.
    assert prompts(model)[-1].prompt == "What did I ask?"
    assert harness_processes(server, session_id)
    assert "MANGO-7" in prompts(model)[-1].transcript_text


def test_chat_completions_raw_stream_format(server, model):
    model.enqueue(Reply([text("Plain frames.")]))
    with httpx.stream(
        "POST",
        f"{base(server)}/chat/completions",
        headers={"x-api-key": server.api_key},
        json={"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True},
        timeout=120,
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        frames = sse_frames(response)
    assert all(name is None and fid is None for fid, name, _ in frames), "bare data: lines"
    assert frames[-1][2] == "[DONE]"
    chunks = [data for _, _, data in frames[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[-1]["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "stop",
    }
    assert set(chunks[-1]["usage"]) == {"prompt_tokens", "completion_tokens", "total_tokens"}
    assert len({c["id"] for c in chunks}) == 1 and chunks[0]["id"].startswith("chatcmpl_")


# --- OpenAI Responses -----------------------------------------------------------------------


def test_responses_unary_stream_and_previous_response_id_across_a_restart(server, model):
    client = oai(server)
    model.enqueue(Reply([text("Noted: KIWI-3.")]))
    first = client.responses.create(model="m", input="Remember KIWI-3.")
    assert first.id.startswith("resp_") and first.status == "completed"
    assert first.output_text == "Noted: KIWI-3."
    assert first.usage is not None and first.usage.input_tokens > 0

    model.enqueue(Reply([text("It was KIWI-3, streamed.")], chunk_delay=0.01))
    deltas, kinds = [], []
    with client.responses.stream(
        model="m",
        input=[{"role": "user", "content": [{"type": "input_text", "text": "What was it?"}]}],
        previous_response_id=first.id,
    ) as stream:
        for event in stream:
            kinds.append(event.type)
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
        second = stream.get_final_response()
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert "".join(deltas) == second.output_text == "It was KIWI-3, streamed."
    assert second.previous_response_id == first.id
    assert "KIWI-3" in prompts(model)[-1].transcript_text
    assert second.model_extra["karta_session_id"] == first.model_extra["karta_session_id"]

    # The response → session mapping is in the database: a restart keeps it.
    server.restart()
    model.enqueue(Reply([text("Still KIWI-3.")]))
    third = oai(server).responses.create(
        model="m", input="And now?", previous_response_id=second.id
    )
    assert third.output_text == "Still KIWI-3."
    assert "KIWI-3" in prompts(model)[-1].transcript_text

    with pytest.raises(openai.NotFoundError):
        oai(server).responses.create(model="m", input="x", previous_response_id="resp_unknown")


def test_responses_raw_stream_format(server, model):
    model.enqueue(Reply([text("Named events.")]))
    with httpx.stream(
        "POST",
        f"{base(server)}/responses",
        headers=bearer(server.api_key),
        json={"input": "hi", "stream": True, "store": False},
        timeout=120,
    ) as response:
        frames = sse_frames(response)
    names = [name for _, name, _ in frames]
    assert names[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert names[-1] == "response.completed"
    assert all(data["type"] == name for _, name, data in frames)
    seqs = [data["sequence_number"] for _, _, data in frames]
    assert seqs == list(range(1, len(frames) + 1))
    deltas = [d["delta"] for _, n, d in frames if n == "response.output_text.delta"]
    final = frames[-1][2]["response"]
    assert "".join(deltas) == final["output_text"] == "Named events."
    assert final["output"][0]["content"][0] == {
        "type": "output_text",
        "text": "Named events.",
        "annotations": [],
        "logprobs": [],
    }
    # store: false keeps no mapping, so the response cannot be continued.
    refused = httpx.post(
        f"{base(server)}/responses",
        headers=bearer(server.api_key),
        json={"input": "again", "previous_response_id": final["id"]},
    )
    assert refused.status_code == 404
    assert refused.json()["error"]["type"] == "not_found_error"


# --- Anthropic Messages ---------------------------------------------------------------------


def test_anthropic_messages_unary_stream_and_continuation(server, model):
    client = claude(server)  # sends the key as x-api-key, to …/anthropic/v1/messages
    model.enqueue(Reply([text("Filed: PEAR-9.")]))
    raw = client.messages.with_raw_response.create(
        model="claude-any",
        max_tokens=256,
        messages=[{"role": "user", "content": "Remember PEAR-9."}],
    )
    message = raw.parse()
    session_id = raw.headers["x-karta-session-id"]
    assert message.content[0].text == "Filed: PEAR-9."
    assert message.stop_reason == "end_turn" and message.role == "assistant"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0

    model.enqueue(Reply([text("You asked for PEAR-9, in pieces.")], chunk_delay=0.01))
    with client.messages.stream(
        model="claude-any",
        max_tokens=256,
        messages=[{"role": "user", "content": [{"type": "text", "text": "What was it?"}]}],
        metadata={"karta_session_id": session_id},  # type: ignore[typeddict-unknown-key]
    ) as stream:
        streamed = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert streamed == final.content[0].text == "You asked for PEAR-9, in pieces."
    assert final.stop_reason == "end_turn"
    assert "PEAR-9" in prompts(model)[-1].transcript_text


def test_anthropic_messages_raw_stream_format_on_the_short_path(server, model):
    model.enqueue(Reply([text("Events by name.")]))
    with httpx.stream(
        "POST",
        f"{base(server)}/messages",
        headers={"x-api-key": server.api_key, "anthropic-version": "2023-06-01"},
        json={
            "model": "m",
            "max_tokens": 10,
            "stream": True,
            "messages": [{"role": "user", "content": "hi"}],
        },
        timeout=120,
    ) as response:
        assert response.status_code == 200
        frames = sse_frames(response)
    names = [name for _, name, _ in frames]
    assert names[:2] == ["message_start", "content_block_start"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(names[2:-3]) == {"content_block_delta"}
    assert all(data["type"] == name for _, name, data in frames)
    text_deltas = [d["delta"]["text"] for _, n, d in frames if n == "content_block_delta"]
    assert "".join(text_deltas) == "Events by name."
    assert frames[-2][2]["delta"]["stop_reason"] == "end_turn"
    assert frames[-2][2]["usage"]["output_tokens"] > 0


def test_a_call_that_opens_a_session_sends_the_history_it_shows(server, model):
    history = [
        {"role": "system", "content": "Answer in one word."},
        {"role": "user", "content": "My code word is LYCHEE-4."},
        {"role": "assistant", "content": "Noted."},
        {"role": "user", "content": "What is my code word?"},
    ]
    model.enqueue(Reply([text("LYCHEE-4.")]))
    completion = oai(server).chat.completions.create(model="m", messages=history)
    sent = prompts(model)[-1].prompt
    assert sent == with_history(
        [
            ("system", "Answer in one word."),
            ("user", "My code word is LYCHEE-4."),
            ("assistant", "Noted."),
        ],
        "What is my code word?",
    )
    assert sent.startswith("<conversation_history>\n")
    assert '<message role="assistant">\nNoted.\n</message>' in sent
    assert sent.endswith("</conversation_history>\n\nWhat is my code word?")

    # Going on in that session sends the newest message only: the harness has the rest.
    model.enqueue(Reply([text("Yes.")]))
    oai(server).chat.completions.create(
        model="m",
        messages=[
            *history,
            {"role": "assistant", "content": "LYCHEE-4."},
            {"role": "user", "content": "Sure?"},
        ],
        metadata={"karta_session_id": completion.model_extra["karta_session_id"]},
    )
    assert prompts(model)[-1].prompt == "Sure?"
    assert "My code word is LYCHEE-4." in prompts(model)[-1].transcript_text

    # Messages: the `system` prompt and the earlier turns, content blocks or strings.
    model.enqueue(Reply([text("PLUM-2.")]))
    claude(server).messages.create(
        model="m",
        max_tokens=10,
        system=[{"type": "text", "text": "Be terse."}],
        messages=[
            {"role": "user", "content": "Code: PLUM-2."},
            {"role": "assistant", "content": [{"type": "text", "text": "Got it."}]},
            {"role": "user", "content": [{"type": "text", "text": "Code?"}]},
        ],
    )
    assert prompts(model)[-1].prompt == with_history(
        [("system", "Be terse."), ("user", "Code: PLUM-2."), ("assistant", "Got it.")], "Code?"
    )

    # Responses: message items are a history too, `instructions` its system prompt.
    model.enqueue(Reply([text("FIG-9.")]))
    response = oai(server).responses.create(
        model="m",
        instructions="Reply tersely.",
        input=[
            {"role": "user", "content": "Code: FIG-9."},
            {"role": "assistant", "content": "Stored."},
            {"role": "user", "content": [{"type": "input_text", "text": "Code?"}]},
        ],
    )
    assert prompts(model)[-1].prompt == with_history(
        [("system", "Reply tersely."), ("user", "Code: FIG-9."), ("assistant", "Stored.")],
        "Code?",
    )
    model.enqueue(Reply([text("Yes.")]))
    oai(server).responses.create(
        model="m",
        previous_response_id=response.id,
        input=[{"role": "user", "content": "Certain?"}],
    )
    assert prompts(model)[-1].prompt == "Certain?"


# --- Managed Agents -------------------------------------------------------------------------


def test_managed_agents_tool_call_and_approval_with_the_sdk(server, model):
    client = claude(server)
    session = client.beta.sessions.create(agent="triage", environment_id="karta")
    assert session.id.startswith("sess_") and session.status == "idle"
    model.enqueue(
        [
            text("Let me note that in the notes folder."),  # longer than a chunk: two
            tool_use("Write", {"file_path": "notes/ma.md", "content": "hi\n"}),
        ]
    )
    model.enqueue([text("Noted.")])

    seen: list[Any] = []
    with client.beta.sessions.events.stream(session.id) as stream:
        client.beta.sessions.events.send(
            session.id,
            events=[{"type": "user.message", "content": [{"type": "text", "text": "log it"}]}],
        )
        for event in stream:
            seen.append(event)
            if event.type == "session.status_idle" and event.stop_reason.type == "requires_action":
                assert not (server.workspace(session.id) / "notes" / "ma.md").exists()
                client.beta.sessions.events.send(
                    session.id,
                    events=[
                        {
                            "type": "user.tool_confirmation",
                            "tool_use_id": event.stop_reason.event_ids[0],
                            "result": "allow",
                        }
                    ],
                )
    kinds = [e.type for e in seen]
    assert kinds[0] == "session.status_running"
    assert kinds.count("session.status_idle") == 2 and kinds[-1] == "session.status_idle"
    assert seen[-1].stop_reason.type == "end_turn"
    tool = next(e for e in seen if e.type == "agent.tool_use")
    assert (tool.name, tool.input["content"]) == ("Write", "hi\n")
    result = next(e for e in seen if e.type == "agent.tool_result")
    assert result.tool_use_id == tool.tool_use_id and not result.is_error
    # One agent.message per assistant message, whole; no previews unless asked for.
    said = [e.content[0].text for e in seen if e.type == "agent.message"]
    assert said == ["Let me note that in the notes folder.", "Noted."]
    assert not {"event_start", "event_delta"} & set(kinds)
    assert (server.workspace(session.id) / "notes" / "ma.md").read_text() == "hi\n"
    assert client.beta.sessions.retrieve(session.id).status == "idle"

    # The same log over raw HTTP, on Karta's documented paths: state, replay from cursors.
    with httpx.Client(base_url=base(server), headers=bearer(server.api_key), timeout=60) as http:
        state = http.get(f"/managed-agents/sessions/{session.id}").json()
        assert state["status"] == "idle" and state["object"] == "session"
        log = state["events"]
        assert [e["type"] for e in log] == kinds
        assert [e["seq"] for e in log] == sorted({e["seq"] for e in log})
        for cursor in (0, log[2]["seq"], log[-2]["seq"] - 1):
            with http.stream(
                "GET",
                f"/managed-agents/sessions/{session.id}/events/stream",
                params={"after": cursor},
            ) as response:
                replayed = sse_frames(response)
            assert [data for _, _, data in replayed] == [e for e in log if e["seq"] > cursor]
            assert [int(fid) for fid, _, _ in replayed] == [
                e["seq"] for e in replayed_data(replayed)
            ]
        with http.stream(
            "GET",
            f"/managed-agents/sessions/{session.id}/events/stream",
            headers={"Last-Event-ID": str(log[3]["seq"])},
        ) as response:
            assert [d for _, _, d in sse_frames(response)] == log[4:]


def test_managed_agents_previews_on_request_and_the_event_list_in_pages(server, model):
    client = claude(server)
    session = client.beta.sessions.create(agent="triage", environment_id="karta")
    said = "Previews come chunk by chunk; the message comes whole."
    model.enqueue(Reply([text(said)], chunk_delay=0.01))
    seen: list[Any] = []
    with client.beta.sessions.events.stream(session.id, event_deltas=["agent.message"]) as stream:
        client.beta.sessions.events.send(
            session.id,
            events=[{"type": "user.message", "content": [{"type": "text", "text": "go"}]}],
        )
        seen.extend(stream)
    kinds = [e.type for e in seen]
    assert kinds[0] == "session.status_running" and kinds[-1] == "session.status_idle"
    message = next(e for e in seen if e.type == "agent.message")
    assert message.content[0].text == said
    start = seen[kinds.index("event_start")]
    assert (start.event.type, start.event.id) == ("agent.message", message.id)
    deltas = [e for e in seen if e.type == "event_delta"]
    assert len(deltas) > 1 and {d.event_id for d in deltas} == {message.id}
    assert "".join(d.delta.content.text for d in deltas) == said
    positions = [n for n, k in enumerate(kinds) if k in ("event_start", "event_delta")]
    assert positions == list(range(positions[0], kinds.index("agent.message")))

    with httpx.Client(base_url=base(server), headers=bearer(server.api_key), timeout=60) as http:
        path = f"/anthropic/v1/sessions/{session.id}/events"
        log = http.get(f"/managed-agents/sessions/{session.id}").json()["events"]
        assert [e["type"] for e in log] == [k for k in kinds if not k.startswith("event_")]
        # Replayed with previews: they carry no SSE id, so a cursor never points at one.
        with http.stream(
            "GET", f"{path}/stream", params={"event_deltas": "agent.message"}
        ) as response:
            replayed = sse_frames(response)
        assert [name for _, name, _ in replayed] == kinds
        assert all((fid is None) == name.startswith("event_") for fid, name, _ in replayed)
        bogus = http.get(f"{path}/stream", params={"event_deltas": "agent.everything"})
        assert bogus.status_code == 422 and bogus.json()["type"] == "error"

        # The event list, in pages: the SDK walks next_page; raw pages link the same way.
        assert [e.id for e in client.beta.sessions.events.list(session.id, limit=2)] == [
            e["id"] for e in log
        ]
        pages, cursor = [], None
        while True:
            page = http.get(path, params={"limit": 2, **({"page": cursor} if cursor else {})})
            assert page.status_code == 200, page.text
            pages.append(page.json()["data"])
            cursor = page.json()["next_page"]
            if cursor is None:
                break
            assert cursor == pages[-1][-1]["id"]
        assert [len(p) for p in pages[:-1]] == [2] * (len(pages) - 1)
        assert [e for p in pages for e in p] == log
        # Filtered by type: the SDK sends `types[]=…`, raw calls may repeat `types=…`.
        assert [e.id for e in client.beta.sessions.events.list(session.id, types=[MESSAGE])] == [
            message.id
        ]
        typed = http.get(
            path, params=[("types", "agent.message"), ("types", "session.status_idle")]
        )
        assert [e["type"] for e in typed.json()["data"]] == ["agent.message", "session.status_idle"]
        for params, status in (
            ({"page": "sevt_x"}, 422),
            ({"order": "desc"}, 422),
            ({"created_at[gt]": "2026-01-01T00:00:00Z"}, 400),
        ):
            refused = http.get(path, params=params)
            assert refused.status_code == status, (params, refused.text)
            assert refused.json()["error"]["type"] == "invalid_request_error"


def test_managed_agents_sessions_list_retrieve_and_delete(server, model):
    client = claude(server)
    made = [
        client.beta.sessions.create(agent="triage", environment_id="karta", metadata={"n": str(n)})
        for n in range(3)
    ]
    newest_first = [s.id for s in reversed(made)]
    page = client.beta.sessions.list(limit=2)
    assert [s.id for s in page.data] == newest_first[:2]
    assert page.has_next_page() and page.next_page == newest_first[1]
    assert page.data[0].status == "idle" and page.data[0].metadata == {"n": "2"}
    listed = [s.id for s in client.beta.sessions.list(limit=2)]  # every page, via next_page
    assert len(listed) == len(set(listed)) and listed[:3] == newest_first
    assert client.beta.sessions.retrieve(made[0].id).status == "idle"

    deleted = client.beta.sessions.delete(made[0].id)
    assert (deleted.id, deleted.type) == (made[0].id, "session_deleted")
    assert client.beta.sessions.retrieve(made[0].id).status == "terminated"
    assert not server.workspace(made[0].id).exists()
    ended = expect(
        anthropic.ConflictError,
        lambda: client.beta.sessions.events.send(
            made[0].id,
            events=[{"type": "user.message", "content": [{"type": "text", "text": "hi"}]}],
        ),
    )
    assert ended.body["error"]["code"] == "session_ended"

    # The same on Karta's documented mount, over raw HTTP.
    with httpx.Client(base_url=base(server), headers=bearer(server.api_key), timeout=60) as http:
        first = http.get("/managed-agents/sessions", params={"limit": 1}).json()
        assert set(first) == {"data", "next_page", "prev_page"} and first["prev_page"] is None
        assert first["data"][0]["id"] == made[2].id and "events" not in first["data"][0]
        second = http.get(
            "/managed-agents/sessions", params={"limit": 1, "page": first["next_page"]}
        ).json()
        assert second["data"][0]["id"] == made[1].id
        for _ in range(2):  # deleting an ended session answers the same
            gone = http.delete(f"/managed-agents/sessions/{made[1].id}")
            assert (gone.status_code, gone.json()) == (
                200,
                {"id": made[1].id, "type": "session_deleted"},
            )
        assert http.get(f"/managed-agents/sessions/{made[1].id}").json()["status"] == "terminated"
        missing = http.delete("/managed-agents/sessions/sess_missing")
        assert missing.status_code == 404 and missing.headers["x-should-retry"] == "false"
        assert missing.json()["error"]["type"] == "not_found_error"
        for params, status in (({"statuses": "idle"}, 400), ({"page": "sess_missing"}, 422)):
            refused = http.get("/anthropic/v1/sessions", params=params)
            assert refused.status_code == status, (params, refused.text)
            assert refused.json()["error"]["type"] == "invalid_request_error"


def replayed_data(frames: list[tuple[str | None, str | None, Any]]) -> list[dict[str, Any]]:
    return [data for _, _, data in frames]


def post_event(http: httpx.Client, session_id: str, body: dict[str, Any]) -> httpx.Response:
    return http.post(f"/managed-agents/sessions/{session_id}/events", json=body)


def test_managed_agents_interrupt_stops_the_running_turn(server, model):
    with httpx.Client(base_url=base(server), headers=bearer(server.api_key), timeout=60) as http:
        created = http.post("/managed-agents/sessions", json={"metadata": {"ticket": "T-1"}})
        assert created.status_code == 201, created.text
        sid = created.json()["id"]
        assert created.json()["metadata"] == {"ticket": "T-1"}
        asked = len(model.requests)
        model.enqueue(Reply([text("never said")], delay=60))
        accepted = post_event(http, sid, {"type": "user.message", "text": "take your time"})
        assert (accepted.status_code, accepted.json()) == (202, {"accepted": True})
        eventually(lambda: len(model.requests) > asked, "the model to be asked")
        assert http.get(f"/managed-agents/sessions/{sid}").json()["status"] == "running"
        assert harness_processes(server, sid), "a harness process runs the turn"

        busy = post_event(http, sid, {"type": "user.message", "text": "hello?"})
        assert busy.status_code == 409 and busy.json()["error"]["code"] == "turn_in_progress"
        assert busy.headers["x-should-retry"] == "false"

        assert post_event(http, sid, {"type": "user.interrupt"}).status_code == 202
        state = http.get(f"/managed-agents/sessions/{sid}").json()
        assert state["status"] == "idle"
        assert state["events"][-1]["stop_reason"] == {"type": "interrupted"}
        assert "never said" not in json.dumps(state["events"])

        # The session stays usable: the next message runs a new turn to its end.
        model.enqueue(Reply([text("Back again.")]))
        end = state["events"][-1]["seq"]
        assert post_event(http, sid, {"type": "user.message", "text": "hi"}).status_code == 202
        with http.stream(
            "GET", f"/managed-agents/sessions/{sid}/events/stream", params={"after": end}
        ) as response:
            tail = [data for _, _, data in sse_frames(response)]
        assert tail[0]["type"] == "session.status_running"
        assert tail[-1]["stop_reason"]["type"] == "end_turn"
        assert (
            "".join(e["content"][0]["text"] for e in tail if e["type"] == "agent.message")
            == "Back again."
        )

        for bad in (
            {"type": "user.dance"},
            {"type": "user.message"},
            {"type": "user.tool_confirmation", "result": "maybe"},
            {"events": []},
        ):
            refused = post_event(http, sid, bad)
            assert refused.status_code == 400, bad
            assert refused.json()["type"] == "error"
        none_pending = post_event(http, sid, {"type": "user.tool_confirmation", "result": "allow"})
        assert none_pending.status_code == 409


# --- errors as each SDK expects them ----------------------------------------------------------


def expect(exc: type[Exception], call: Callable[[], Any]) -> Any:
    with pytest.raises(exc) as caught:
        call()
    return caught.value


def both_sdks(server: KartaServer, key: str) -> list[Callable[[], Any]]:
    return [
        lambda: oai(server, key).chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}]
        ),
        lambda: oai(server, key).responses.create(model="m", input="hi"),
        lambda: claude(server, key).messages.create(
            model="m", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        ),
    ]


def test_refusals_raise_each_sdks_own_exceptions(server, model):
    # 401: an unknown key.
    bogus = "kt_live_" + "x" * 32
    for sdk, call in zip(("openai", "openai", "anthropic"), both_sdks(server, bogus), strict=True):
        error = expect(
            openai.AuthenticationError if sdk == "openai" else anthropic.AuthenticationError, call
        )
        assert error.status_code == 401

    # 402: a key whose own monthly cap is spent before the turn runs.
    with server.control() as control:
        capped = control.post(
            "/v1/keys", json={"name": "capped", "scopes": ["write"], "monthly_token_limit": 0}
        )
        assert capped.status_code == 201, capped.text
        capped_key = capped.json()["secret"]
        control.post("/v1/projects", json={"slug": "other"})  # may exist already
        token = control.post("/v1/projects/other/session_tokens", json={}).json()["token"]
    calls = both_sdks(server, capped_key)
    for call in calls[:2]:
        error = expect(openai.APIStatusError, call)
        assert error.status_code == 402 and error.body["code"] == "budget_exhausted"
    error = expect(anthropic.PaymentRequiredError, calls[2])
    assert error.body["error"]["type"] == "billing_error"

    # 403: a session token of another project.
    calls = both_sdks(server, token)
    for call in calls[:2]:
        assert expect(openai.PermissionDeniedError, call).status_code == 403
    assert expect(anthropic.PermissionDeniedError, calls[2]).status_code == 403

    # 404: a session of another organization, named to continue it.
    foreign = signup(server.control_url, "adapter-foreigner")
    with httpx.Client(base_url=server.url, headers=bearer(server.api_key)) as owner:
        mine = owner.post(f"/v1/projects/{PROJECT}/sessions", json={}).json()["id"]
    with httpx.Client(base_url=server.control_url, headers=bearer(foreign)) as control:
        control.post("/v1/projects", json={"slug": PROJECT})
    error = expect(
        openai.NotFoundError,
        lambda: oai(server, foreign).chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"X-Karta-Session-Id": mine},
        ),
    )
    assert error.status_code == 404
    expect(
        anthropic.NotFoundError,
        lambda: claude(server, foreign).messages.create(
            model="m",
            max_tokens=10,
            messages=[{"role": "user", "content": "hi"}],
            metadata={"karta_session_id": mine},  # type: ignore[typeddict-unknown-key]
        ),
    )
    expect(anthropic.NotFoundError, lambda: claude(server, foreign).beta.sessions.retrieve(mine))
    unknown = openai.OpenAI(base_url=f"{server.url}/v1/projects/nope", api_key=server.api_key)
    expect(openai.NotFoundError, lambda: unknown.responses.create(model="m", input="hi"))

    # 422: nothing to say.
    expect(
        openai.UnprocessableEntityError,
        lambda: oai(server).chat.completions.create(model="m", messages=[]),
    )
    expect(
        anthropic.UnprocessableEntityError,
        lambda: claude(server).messages.create(
            model="m", max_tokens=10, messages=[{"role": "user", "content": "  "}]
        ),
    )


def test_a_turn_waiting_for_approval_pauses_the_call_and_refuses_the_next(server, model):
    model.enqueue([tool_use("Write", {"file_path": "notes/p.md", "content": "p\n"})])
    model.enqueue([text("Written.")])
    paused = oai(server).chat.completions.create(
        model="m", messages=[{"role": "user", "content": "write p"}]
    )
    assert paused.choices[0].finish_reason == "pending_input"
    pending = paused.model_extra["karta_pending_input"]
    sid = paused.model_extra["karta_session_id"]
    assert pending["tool"] == "Write" and pending["request_id"].startswith("req_")
    error = expect(
        openai.ConflictError,
        lambda: oai(server).chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "hello?"}],
            metadata={"karta_session_id": sid},
        ),
    )
    assert error.body["code"] == "pending_input"
    # Decided through the managed-agents surface, with the request id it named.
    with httpx.Client(base_url=base(server), headers=bearer(server.api_key), timeout=60) as http:
        decided = post_event(
            http,
            sid,
            {
                "type": "user.tool_confirmation",
                "request_id": pending["request_id"],
                "result": "ALLOW",
            },
        )
        assert decided.status_code == 202, decided.text
        eventually(
            lambda: http.get(f"/managed-agents/sessions/{sid}").json()["status"] == "idle",
            "the turn to finish",
        )
    assert (server.workspace(sid) / "notes" / "p.md").read_text() == "p\n"
