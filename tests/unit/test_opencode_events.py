"""Mapping OpenCode's bus events to Karta events."""

from karta.dataplane.harness.opencode_events import OpenCodeEventMapper


def assistant(mapper: OpenCodeEventMapper, message_id: str = "m1") -> None:
    mapper.map("message.updated", {"info": {"id": message_id, "role": "assistant"}})


def part(**fields: object) -> dict:
    return {"part": {"messageID": "m1", **fields}}


def test_text_deltas_and_the_unseen_rest_of_a_completed_part():
    mapper = OpenCodeEventMapper()
    assistant(mapper)
    out = mapper.map("message.part.updated", part(id="p1", type="text", text=""))
    out += mapper.map(
        "message.part.delta", {"messageID": "m1", "partID": "p1", "field": "text", "delta": "Hel"}
    )
    out += mapper.map("message.part.updated", part(id="p1", type="text", text="Hello"))
    out += mapper.map("message.part.updated", part(id="p1", type="text", text="Hello"))
    assert [(e.type, e.part["text"]) for e in out] == [("text", "Hel"), ("text", "lo")]


def test_user_parts_are_ignored_and_reasoning_needs_thinking():
    mapper = OpenCodeEventMapper()
    assert mapper.map("message.part.updated", part(id="u", type="text", text="mine")) == []
    assistant(mapper)
    assert mapper.map("message.part.updated", part(id="r", type="reasoning", text="hm")) == []
    thinking = OpenCodeEventMapper(thinking=True)
    assistant(thinking)
    (event,) = thinking.map("message.part.updated", part(id="r", type="reasoning", text="hm"))
    assert event.type == "reasoning"


def test_tools_steps_usage_and_errors():
    mapper = OpenCodeEventMapper()
    assistant(mapper)
    running = part(
        id="t",
        callID="c1",
        type="tool",
        tool="write",
        state={"status": "running", "input": {"filePath": "a"}},
    )
    done = part(
        id="t",
        callID="c1",
        type="tool",
        tool="write",
        state={"status": "completed", "input": {"filePath": "a"}, "output": "ok"},
    )
    out = mapper.map("message.part.updated", part(id="s", type="step-start"))
    out += mapper.map("message.part.updated", running) + mapper.map("message.part.updated", running)
    out += mapper.map("message.part.updated", done)
    tokens = {"input": 10, "output": 5, "reasoning": 1, "cache": {"read": 2, "write": 0}}
    out += mapper.map(
        "message.part.updated", part(id="f", type="step-finish", reason="stop", tokens=tokens)
    )
    assert [e.type for e in out] == ["step_start", "tool_use", "tool_use", "step_finish"]
    assert out[2].part["state"] == {
        "status": "completed",
        "input": {"filePath": "a"},
        "output": "ok",
    }
    assert mapper.usage()["input_tokens"] == 12 and mapper.usage()["output_tokens"] == 6
    (error,) = mapper.map(
        "session.error", {"error": {"name": "APIError", "data": {"message": "bad request"}}}
    )
    assert error.type == "error" and error.data["message"] == "bad request"
    assert mapper.errors == ["bad request"]
