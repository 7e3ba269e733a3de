"""Mapping claude-agent-sdk messages to Karta events."""

from claude_agent_sdk import (
    AssistantMessage,
    ResultMessage,
    StreamEvent,
    SystemMessage,
    TextBlock,
    ToolResultBlock,
    ToolUseBlock,
    UserMessage,
)

from karta.dataplane.harness.claude_events import ClaudeEventMapper


def stream(event: dict) -> StreamEvent:
    return StreamEvent(uuid="u", session_id="s", event=event)


def result(is_error: bool = False, text: str = "ok") -> ResultMessage:
    return ResultMessage(
        subtype="error_during_execution" if is_error else "success",
        duration_ms=1,
        duration_api_ms=1,
        is_error=is_error,
        num_turns=1,
        session_id="s",
        result=text,
        usage={"input_tokens": 7, "output_tokens": 3, "cache_read_input_tokens": 2},
    )


def test_streamed_text_becomes_deltas_and_the_whole_block_is_not_repeated():
    mapper = ClaudeEventMapper()
    out = []
    for raw in [
        {"type": "message_start", "message": {"id": "m1", "usage": {"input_tokens": 5}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text"}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": " there"},
        },
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn"},
            "usage": {"output_tokens": 4},
        },
        {"type": "message_stop"},
    ]:
        out += mapper.map(stream(raw))
    out += mapper.map(AssistantMessage(content=[TextBlock("Hi there")], model="x", message_id="m1"))
    out += mapper.map(result())
    kinds = [e.type for e in out]
    assert kinds == ["step_start", "text", "text", "step_finish"]
    assert [e.part["text"] for e in out if e.type == "text"] == ["Hi", " there"]
    assert {e.part["id"] for e in out if e.type == "text"} == {"part-m1-0"}
    finish = out[-1].part
    assert finish["reason"] == "end_turn"
    assert finish["tokens"]["input_tokens"] == 5 and finish["tokens"]["output_tokens"] == 4
    assert mapper.usage() == {
        "input_tokens": 9,
        "output_tokens": 3,
        "total_tokens": 12,
        "cache_read_tokens": 2,
        "cache_write_tokens": 0,
        "model": "x",
    }


def test_unstreamed_text_and_tool_calls_with_results():
    mapper = ClaudeEventMapper()
    out = mapper.map(
        AssistantMessage(
            content=[TextBlock("Writing."), ToolUseBlock("toolu_1", "Write", {"file_path": "a"})],
            model="x",
            message_id="m2",
        )
    )
    out += mapper.map(UserMessage(content=[ToolResultBlock("toolu_1", "written", False)]))
    assert [e.type for e in out] == ["text", "tool_use", "tool_use"]
    assert out[0].part["text"] == "Writing."
    running, completed = out[1], out[2]
    assert running.part["id"] == completed.part["id"] == "toolu_1"
    assert running.data["tool_name"] == "Write" and running.part["state"]["status"] == "running"
    assert completed.part["state"] == {
        "status": "completed",
        "input": {"file_path": "a"},
        "output": "written",
    }


def test_reasoning_only_when_thinking_was_asked_for():
    delta = {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "thinking_delta", "thinking": "hmm"},
    }
    assert ClaudeEventMapper(thinking=False).map(stream(delta)) == []
    (event,) = ClaudeEventMapper(thinking=True).map(stream(delta))
    assert event.type == "reasoning" and event.part["text"] == "hmm"


def test_errors_and_system_messages():
    mapper = ClaudeEventMapper()
    (error,) = mapper.map(result(is_error=True, text="API Error: 500"))
    assert error.type == "error" and error.data["message"] == "API Error: 500"
    (system,) = mapper.map(SystemMessage(subtype="init", data={"model": "m", "cwd": "/secret"}))
    assert system.data == {"subtype": "init", "model": "m"}
    (model_error,) = mapper.map(
        AssistantMessage(
            content=[TextBlock("API Error: 401")],
            model="<synthetic>",
            error="authentication_failed",
        )
    )
    assert model_error.type == "error" and model_error.data["code"] == "model_error"
