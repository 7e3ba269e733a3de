"""The event envelope, SSE framing and the turn accumulator."""

from karta import events as ev
from karta.events import Event, TurnAccumulator, encode_sse, iter_sse_events


def test_sse_round_trip_keeps_seq_as_frame_id():
    event = Event(
        "text",
        {"part": {"id": "p1", "type": "text", "text": "héllo\nworld"}, "delta": True},
        session_id="sess_1",
        seq=7,
    )
    frame = encode_sse(event).decode()
    assert frame.startswith("id: 7\nevent: text\ndata: {")
    assert frame.endswith("\n\n")
    (decoded,) = iter_sse_events((frame + ev.KEEPALIVE_FRAME.decode()).split("\n"))
    assert decoded == event


def test_accumulator_appends_deltas_by_part_and_joins_text_parts():
    acc = TurnAccumulator().extend(
        [
            ev.text_event("a", "Hel"),
            ev.text_event("a", "lo"),
            Event(
                "tool_use",
                {
                    "part": {
                        "id": "t1",
                        "type": "tool",
                        "tool": "Read",
                        "state": {"status": "running"},
                    }
                },
            ),
            Event(
                "tool_use",
                {
                    "part": {
                        "id": "t1",
                        "type": "tool",
                        "tool": "Read",
                        "state": {"status": "completed", "output": "x"},
                    }
                },
            ),
            ev.text_event("b", "world"),
            ev.text_event("r", "thinking…", kind=ev.REASONING),
            ev.done_event({"input_tokens": 3, "output_tokens": 4, "total_tokens": 7}),
        ]
    )
    assert acc.text == "Hello\n\nworld"
    assert acc.parts["t1"]["data"]["state"]["status"] == "completed"
    assert acc.parts["r"]["type"] == "reasoning"
    assert acc.usage["total_tokens"] == 7 and acc.status == "completed"


def test_accumulator_records_errors_and_pending_input():
    acc = TurnAccumulator().extend(
        [
            ev.error_event("boom", "harness_crashed"),
            Event("input_required", {"request_id": "req_1", "tool": "Write"}),
        ]
    )
    assert acc.errors == [{"message": "boom", "code": "harness_crashed"}]
    assert acc.pending_input == {"request_id": "req_1", "tool": "Write"}
    assert acc.text == ""
