"""The scripted model's OpenAI Chat Completions side (what OpenCode's OpenAI-compatible
provider speaks), checked with the official `openai` SDK as the client."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import openai
import pytest

from karta.testing import ScriptedModel, error_reply, text, tool_use
from karta.testing.scripted_model import TITLE


@pytest.fixture
def model() -> Iterator[ScriptedModel]:
    with ScriptedModel(chunk_size=5) as scripted:
        yield scripted


@pytest.fixture
def client(model: ScriptedModel) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{model.url}/v1", api_key="sk-scripted", max_retries=0)


def test_streamed_text_arrives_as_deltas_with_usage(client, model):
    model.enqueue([text("Hello from the script")])
    chunks = list(
        client.chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    pieces = [
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    ]
    assert len(pieces) > 1 and "".join(pieces) == "Hello from the script"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage.total_tokens == 15
    assert model.requests[-1].wire == "openai" and model.requests[-1].prompt == "hi"


def test_streamed_tool_calls_reassemble(client, model):
    model.enqueue([tool_use("bash", {"command": "echo hi > out.txt"}, id="call_1")])
    chunks = list(
        client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "run it"}], stream=True
        )
    )
    calls = [t for c in chunks if c.choices for t in (c.choices[0].delta.tool_calls or [])]
    assert calls[0].id == "call_1" and calls[0].function.name == "bash"
    arguments = "".join(t.function.arguments or "" for t in calls)
    assert json.loads(arguments) == {"command": "echo hi > out.txt"}
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"


def test_tool_results_and_history_are_understood(client, model):
    model.enqueue([text("It printed hi.")])
    answer = client.chat.completions.create(
        model="m",
        messages=[
            {"role": "system", "content": "You are opencode. MARKER-7"},
            {"role": "user", "content": [{"type": "text", "text": "run it"}]},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "bash", "arguments": '{"command":"ls"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "hi\n"},
        ],
    )
    assert answer.choices[0].message.content == "It printed hi."
    seen = model.requests[-1]
    assert seen.kind == "tool_result"
    assert seen.tool_results == [{"tool_use_id": "call_1", "content": "hi\n", "is_error": False}]
    assert "MARKER-7" in seen.transcript_text and '"command": "ls"' in seen.transcript_text


def test_title_requests_do_not_consume_the_script(client, model):
    model.enqueue([text("the real answer")])
    title = client.chat.completions.create(
        model="m",
        messages=[
            {"role": "system", "content": "You are a title generator. Output only a title."},
            {"role": "user", "content": "hi"},
        ],
    )
    assert title.choices[0].message.content == TITLE
    answer = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert answer.choices[0].message.content == "the real answer"
    assert [r.kind for r in model.requests] == ["title", "prompt"]


def test_sessions_route_by_opencode_header_and_errors_map(client, model):
    model.enqueue([text("for ses_1")], session="ses_1")
    routed = httpx.post(
        f"{model.url}/v1/chat/completions",
        headers={"x-session-id": "ses_1"},
        json={"model": "m", "messages": [{"role": "user", "content": "x"}]},
    )
    assert routed.json()["choices"][0]["message"]["content"] == "for ses_1"
    model.enqueue(error_reply(500, "boom"))
    with pytest.raises(openai.InternalServerError) as failure:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert failure.value.status_code == 500 and "boom" in str(failure.value)
