"""The scripted model on the wire: what a harness sees when it talks to it."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from karta.core.sse import iter_frames
from karta.testing import Reply, ScriptedModel, error_reply, text, thinking, tool_use
from karta.testing.scripted_model import CALL_LIMIT_TEXT, COMPACTION_SUMMARY


@pytest.fixture
def model() -> Iterator[ScriptedModel]:
    with ScriptedModel(max_calls=5, chunk_size=4) as scripted:
        yield scripted


def body(*messages: dict, stream: bool = True) -> dict:
    return {"model": "m", "max_tokens": 10, "stream": stream, "messages": list(messages)}


def user(*blocks: dict | str) -> dict:
    return {"role": "user", "content": [b if isinstance(b, dict) else text(b) for b in blocks]}


def post(
    model: ScriptedModel, payload: dict, path: str = "/v1/messages?beta=true", **headers: str
) -> httpx.Response:
    return httpx.post(model.url + path, json=payload, headers=headers, timeout=10)


def sse(response: httpx.Response) -> list[dict]:
    assert response.headers["content-type"].startswith("text/event-stream")
    frames = list(iter_frames(response.text.split("\n")))
    assert all(json.loads(f.data)["type"] == f.event for f in frames)
    return [json.loads(f.data) for f in frames]


def test_streamed_text_arrives_in_chunks_in_anthropic_order(model):
    model.enqueue([text("Hello world")])
    events = sse(post(model, body(user("hi"))))
    kinds = [e["type"] for e in events]
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    deltas = [e["delta"]["text"] for e in events if e["type"] == "content_block_delta"]
    assert deltas == ["Hell", "o wo", "rld"]
    assert events[-2]["delta"]["stop_reason"] == "end_turn"


def test_tool_use_and_thinking_blocks(model):
    model.enqueue([thinking("hmm"), tool_use("Write", {"file_path": "a"}, id="toolu_x")])
    events = sse(post(model, body(user("go"))))
    starts = [e["content_block"] for e in events if e["type"] == "content_block_start"]
    assert starts[0]["type"] == "thinking" and starts[1] == {
        "type": "tool_use",
        "id": "toolu_x",
        "name": "Write",
        "input": {},
    }
    deltas = [e["delta"] for e in events if e["type"] == "content_block_delta"]
    assert deltas[0] == {"type": "thinking_delta", "thinking": "hmm"}
    assert deltas[1]["type"] == "signature_delta"
    assert json.loads(deltas[2]["partial_json"]) == {"file_path": "a"}
    assert events[-2]["delta"]["stop_reason"] == "tool_use"


def test_non_streaming_answers_the_whole_message_and_path_prefixes_work(model):
    model.enqueue(Reply([text("whole")], usage={"input_tokens": 3, "output_tokens": 2}))
    response = post(model, body(user("hi"), stream=False), path="/tenant-a/v1/messages")
    message = response.json()
    assert message["content"] == [text("whole")] and message["usage"]["input_tokens"] == 3
    assert model.requests[-1].path == "/tenant-a/v1/messages"


def test_session_scripts_beat_the_global_queue_and_callables_see_the_request(model):
    model.enqueue([text("global")])
    model.enqueue(
        lambda request: [text(f"for {request.session_id}: {request.prompt}")], session="s-1"
    )
    routed = post(
        model,
        body(user("<system-reminder>ctx</system-reminder>", "ask"), stream=False),
        **{"X-Claude-Code-Session-Id": "s-1"},
    ).json()
    assert routed["content"] == [text("for s-1: ask")]
    other = post(model, body(user("x"), stream=False)).json()
    assert other["content"] == [text("global")]
    assert model.requests_for("s-1")[0].prompt == "ask"


def test_default_echo_and_call_cap_never_call_tools(model):
    first = post(model, body(user("echo me"), stream=False)).json()
    assert first["content"] == [text("(scripted model) You said: echo me")]
    model.enqueue([tool_use("Bash", {"command": "loop"})])
    for _ in range(5):
        last = post(model, body(user("again"), stream=False)).json()
    assert last["content"] == [text(CALL_LIMIT_TEXT)] and model.calls_exhausted


def test_injected_errors(model):
    model.enqueue(error_reply(529, "overloaded", type="overloaded_error"))
    response = post(model, body(user("x")))
    assert response.status_code == 529
    assert response.json() == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "overloaded"},
    }


def test_classification_of_requests(model):
    model.enqueue([text("kept for the prompt")])
    compaction = post(
        model, body(user("CRITICAL: Respond with TEXT ONLY. Summarise."), stream=False)
    ).json()
    assert compaction["content"] == [text(COMPACTION_SUMMARY)]
    notice = post(
        model, body(user("<task-notification>done</task-notification>"), stream=False)
    ).json()
    assert notice["content"][0]["text"] == "(scripted model) noted."
    result = {
        "type": "tool_result",
        "tool_use_id": "toolu_1",
        "content": "denied",
        "is_error": True,
    }
    with_system = body(
        user("q"),
        {"role": "assistant", "content": [text("a")]},
        user(result),
        {"role": "system", "content": "env"},
        stream=False,
    )
    answer = post(model, with_system).json()
    assert answer["content"] == [text("kept for the prompt")]
    seen = model.requests
    assert [r.kind for r in seen] == ["compaction", "task_notification", "tool_result"]
    assert seen[-1].tool_results == [
        {"tool_use_id": "toolu_1", "content": "denied", "is_error": True}
    ]
    assert "env" in seen[-1].transcript_text


def test_other_paths_are_404_and_reset_clears_everything(model):
    assert httpx.get(model.url + "/v1/models").status_code == 404
    model.enqueue([text("x")])
    model.reset()
    assert model.pending() == 0 and model.requests == []


def test_karta_mock_model_serves_the_echoing_model():
    import subprocess
    import sys
    import time

    from tests.conftest import free_port

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "karta.cli", "mock-model", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                answer = httpx.post(
                    f"http://127.0.0.1:{port}/v1/messages",
                    json=body(user("ping"), stream=False),
                    timeout=2,
                ).json()
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "karta mock-model did not start"
                time.sleep(0.1)
        assert answer["content"] == [text("(scripted model) You said: ping")]
    finally:
        proc.terminate()
        proc.wait(10)
