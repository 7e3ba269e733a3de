"""The consumer adapters' projections, pinned by golden files: each recorded event sequence in
tests/golden/events/ (recorded from real Claude Code turns) is projected onto every wire format
and compared with tests/golden/adapters/. Regenerate with KARTA_UPDATE_GOLDEN=1 after a
deliberate change, and read the diff.

Beyond the pins: the concatenated text deltas equal the final text (nothing repeated), and the
managed-agents log replays identically from every cursor."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from karta.core import events as ev
from karta.core.events import Event
from karta.core.sse import Frame
from karta.core.turn_fold import TurnOutcome
from karta.dataplane.adapters.anthropic_messages import MessagesStream, message_object
from karta.dataplane.adapters.common import (
    HISTORY_PREAMBLE,
    Stamp,
    input_text,
    split_turns,
    with_history,
)
from karta.dataplane.adapters.managed_agents import (
    ManagedAgentsLog,
    ManagedStream,
    karta_cursor,
    project_log,
)
from karta.dataplane.adapters.openai_chat import ChatStream, chat_completion
from karta.dataplane.adapters.openai_responses import ResponsesStream, response_object

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
RECORDED = sorted(p.stem for p in (GOLDEN / "events").glob("*.json"))
UPDATE = os.environ.get("KARTA_UPDATE_GOLDEN") == "1"


def recorded(name: str) -> list[Event]:
    raw = json.loads((GOLDEN / "events" / f"{name}.json").read_text())
    return [Event.from_dict(d) for d in raw]


def segments(events: list[Event]) -> list[list[Event]]:
    """What one adapter call sees: the events up to a pause (approval) or the turn's end."""
    out: list[list[Event]] = [[]]
    for event in events:
        out[-1].append(event)
        if event.type in ev.PAUSING_TYPES:
            out.append([])
    return [s for s in out if s]


def stamp(prefix: str) -> Stamp:
    return Stamp(f"{prefix}_golden", 1_800_000_000, "karta", "sess_golden")


def streamed(projection: Any, events: list[Event]) -> str:
    frames = projection.start()
    for event in events:
        frames += projection.feed(event)
    return b"".join(f.encode() for f in frames).decode()


def pretty(value: Any) -> str:
    return json.dumps(value, indent=1, ensure_ascii=False) + "\n"


def render(name: str, projection: str) -> str:
    parts = []
    for n, seg in enumerate(segments(recorded(name)), 1):
        outcome = TurnOutcome.of(seg)
        if projection == "chat.sse":
            body = streamed(ChatStream(stamp("chatcmpl")), seg)
        elif projection == "chat.json":
            body = pretty(chat_completion(stamp("chatcmpl"), outcome))
        elif projection == "responses.sse":
            body = streamed(ResponsesStream(stamp("resp")), seg)
        elif projection == "responses.json":
            body = pretty(response_object(stamp("resp"), outcome))
        elif projection == "messages.sse":
            body = streamed(MessagesStream(stamp("msg")), seg)
        else:
            assert projection == "messages.json"
            body = pretty(message_object(stamp("msg"), outcome))
        parts.append(f"### call {n}: karta seq {seg[0].seq}..{seg[-1].seq}\n{body}")
    return "".join(parts)


PROJECTIONS = [
    "chat.sse",
    "chat.json",
    "responses.sse",
    "responses.json",
    "messages.sse",
    "messages.json",
]


def check_golden(path: Path, actual: str) -> None:
    if UPDATE or not path.exists():
        path.write_text(actual)
        if not UPDATE:
            pytest.fail(f"{path.name} did not exist: written, check it in")
    assert actual == path.read_text(), f"{path.name} changed (KARTA_UPDATE_GOLDEN=1 rewrites it)"


@pytest.mark.parametrize("projection", PROJECTIONS)
@pytest.mark.parametrize("name", RECORDED)
def test_turn_projections_match_their_golden_files(name: str, projection: str) -> None:
    check_golden(GOLDEN / "adapters" / f"{name}.{projection}", render(name, projection))


@pytest.mark.parametrize("name", RECORDED)
def test_the_managed_agents_log_matches_its_golden_file(name: str) -> None:
    check_golden(
        GOLDEN / "adapters" / f"{name}.managed-agents.json", pretty(project_log(recorded(name)))
    )


@pytest.mark.parametrize("name", RECORDED)
def test_the_managed_agents_stream_with_previews_matches_its_golden_file(name: str) -> None:
    frames = stream_frames(recorded(name), 0, previews=True)
    check_golden(
        GOLDEN / "adapters" / f"{name}.managed-agents.sse",
        b"".join(f.encode() for f in frames).decode(),
    )


def test_the_recordings_cover_every_ending() -> None:
    endings = {
        (s[-1].type, s[-1].data.get("status")) for n in RECORDED for s in segments(recorded(n))
    }
    assert {
        ("done", "completed"),
        ("done", "failed"),
        ("done", "cancelled"),
        ("input_required", None),
    } <= endings


# --- properties ------------------------------------------------------------------------------


def sse_data(text: str) -> list[tuple[str | None, Any]]:
    frames = []
    for block in text.strip().split("\n\n"):
        name = None
        for line in block.splitlines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                raw = line[6:]
                frames.append((name, raw if raw == "[DONE]" else json.loads(raw)))
    return frames


@pytest.mark.parametrize("name", RECORDED)
def test_streamed_deltas_concatenate_to_the_final_text(name: str) -> None:
    for seg in segments(recorded(name)):
        final = TurnOutcome.of(seg).text
        chat = [
            f[1]["choices"][0]["delta"].get("content", "")
            for f in sse_data(streamed(ChatStream(stamp("c")), seg))
            if isinstance(f[1], dict) and f[1].get("choices")
        ]
        assert (
            "".join(chat)
            == final
            == chat_completion(stamp("c"), TurnOutcome.of(seg))["choices"][0]["message"]["content"]
        )
        responses = sse_data(streamed(ResponsesStream(stamp("resp")), seg))
        deltas = [d["delta"] for k, d in responses if k == "response.output_text.delta"]
        assert "".join(deltas) == final
        assert responses[-1][1]["response"]["output_text"] == final
        messages = sse_data(streamed(MessagesStream(stamp("msg")), seg))
        deltas = [d["delta"]["text"] for k, d in messages if k == "content_block_delta"]
        assert "".join(deltas) == final
        managed = [
            e["content"][0]["text"] for e in project_log(seg) if e["type"] == "agent.message"
        ]
        assert "".join(managed) == "".join(e.part["text"] for e in seg if e.type == "text")


def test_text_parts_are_joined_by_a_blank_line_and_never_repeated() -> None:
    deltas = TurnOutcome()
    events = [
        ev.text_event("p1", "Let me "),
        ev.text_event("p1", "check."),
        ev.Event(ev.TOOL_USE, {"part": {"id": "t1", "type": "tool"}}),
        ev.text_event("p2", "Found it."),
        ev.text_event("p2", ""),
    ]
    assert [deltas.feed(e) for e in events] == ["Let me ", "check.", "", "\n\nFound it.", ""]
    assert deltas.text == "Let me check.\n\nFound it."


def numbered(*events: Event) -> list[Event]:
    """`events` as a session's log: seqs from 1, timestamps 1 s apart."""
    for seq, event in enumerate(events, 1):
        event.seq, event.turn_id, event.timestamp = seq, "turn_1", 1_800_000_000_000 + 1000 * seq
    return list(events)


def parts_and_a_tool() -> list[Event]:
    """Text parts of several shapes: chunks with an empty one, a part closed by a tool call, a
    part closed by another part, an empty part, and the turn's end."""
    tool = {"id": "toolu_1", "tool": "Write", "state": {"status": "running", "input": {}}}
    return numbered(
        Event(ev.SYSTEM, {"subtype": "init"}),
        ev.text_event("p1", "Let "),
        ev.text_event("p1", "me"),
        ev.text_event("p1", ""),
        Event(ev.TOOL_USE, {"part": tool}),
        ev.text_event("p2", "Do"),
        ev.text_event("p2", "ne."),
        ev.text_event("p3", "Again"),
        ev.text_event("p4", ""),
        ev.done_event({"input_tokens": 3, "output_tokens": 4}),
    )


def test_an_agent_message_carries_its_parts_whole_text() -> None:
    log = project_log(parts_and_a_tool())
    assert [(e["type"], e["seq"], e.get("content")) for e in log] == [
        ("session.status_running", 1, None),
        ("agent.message", 4, [{"type": "text", "text": "Let me"}]),
        ("agent.tool_use", 10, None),
        ("agent.message", 12, [{"type": "text", "text": "Done."}]),
        ("agent.message", 16, [{"type": "text", "text": "Again"}]),
        ("session.status_idle", 20, None),
    ]
    assert [e["id"] for e in log if e["type"] == "agent.message"] == [
        "sevt_4",
        "sevt_12",
        "sevt_16",
    ]
    # Processed when its last chunk was (the empty chunk at seq 4 counts: it is of the part).
    assert log[1]["processed_at"] == "2027-01-15T08:00:04Z"


def test_a_message_still_being_produced_is_not_in_the_log_yet() -> None:
    running = parts_and_a_tool()[:7]
    assert [e["type"] for e in project_log(running)][-1] == "agent.tool_use"


def replay_cases() -> list[Any]:
    cases = [pytest.param(recorded(name), id=name) for name in RECORDED]
    return [*cases, pytest.param(parts_and_a_tool(), id="parts")]


def cursors(events: list[Event]) -> range:
    """Every cursor a client could send, and then some: the projected seqs reach 2 × Karta's."""
    return range(0, 2 * (events[-1].seq or 0) + 2)


@pytest.mark.parametrize("events", replay_cases())
def test_the_managed_agents_log_replays_the_same_from_every_cursor(events: list[Event]) -> None:
    full = project_log(events)
    seqs = [e["seq"] for e in full]
    assert seqs == sorted(set(seqs)), "strictly increasing"
    for after in cursors(events):
        # What the stream route reads: the event at the cursor (context) and all after it.
        start = karta_cursor(after)
        tail = [e for e in events if (e.seq or 0) >= max(1, start)]
        assert project_log(tail, after) == [e for e in full if e["seq"] > after], after


def stream_frames(events: list[Event], after: int, *, previews: bool) -> list[Frame]:
    """What the stream route sends from a cursor: the events it subscribes to, streamed."""
    stream = ManagedStream(after, previews=previews)
    return [f for e in events if (e.seq or 0) > stream.replay_from for f in stream.feed(e)]


def previewed(frame: Frame) -> str:
    """The id of the message a preview frame is about."""
    return frame.data["event"]["id"] if frame.event == "event_start" else frame.data["event_id"]


@pytest.mark.parametrize("events", replay_cases())
def test_the_stream_sends_the_log_and_previews_only_on_request(events: list[Event]) -> None:
    full = project_log(events)
    for after in cursors(events):
        logged = [e for e in full if e["seq"] > after]
        plain = stream_frames(events, after, previews=False)
        assert [(f.event, f.id, f.data) for f in plain] == [
            (e["type"], e["seq"], e) for e in logged
        ]
        frames = stream_frames(events, after, previews=True)
        assert [f for f in frames if f.id is not None] == plain, "previews add frames, only"
        previews = [(n, f) for n, f in enumerate(frames) if f.id is None]
        messages = {e["id"]: e for e in logged if e["type"] == "agent.message"}
        starts = [f.data["event"]["id"] for _, f in previews if f.event == "event_start"]
        assert starts == list(messages), "each message not yet sent is previewed, once"
        for message_id, message in messages.items():
            at = next(n for n, f in enumerate(frames) if f.id == message["seq"])
            mine = [(n, f) for n, f in previews if previewed(f) == message_id]
            assert mine[0][1].event == "event_start" and all(n < at for n, _ in mine)
            deltas = [f.data["delta"]["content"]["text"] for _, f in mine[1:]]
            assert "".join(deltas) == message["content"][0]["text"]


def test_previews_are_anthropics_event_start_and_event_delta() -> None:
    frames = stream_frames(parts_and_a_tool(), 0, previews=True)
    assert [(f.event, f.id) for f in frames] == [
        ("session.status_running", 1),
        ("event_start", None),
        ("event_delta", None),
        ("event_delta", None),
        ("agent.message", 4),
        ("agent.tool_use", 10),
        ("event_start", None),
        ("event_delta", None),
        ("event_delta", None),
        ("agent.message", 12),
        ("event_start", None),
        ("event_delta", None),
        ("agent.message", 16),
        ("session.status_idle", 20),
    ]
    assert frames[1].data == {
        "type": "event_start",
        "event": {"type": "agent.message", "id": "sevt_4"},
    }
    assert frames[2].data == {
        "type": "event_delta",
        "event_id": "sevt_4",
        "delta": {"type": "content_delta", "index": 0, "content": {"type": "text", "text": "Let "}},
    }


def test_an_idle_point_starts_a_new_running_status() -> None:
    log = ManagedAgentsLog()
    first = log.feed(Event(ev.SYSTEM, {"subtype": "init"}, seq=1, turn_id="t1"))
    assert [e["type"] for e in first] == ["session.status_running"]
    assert log.feed(Event(ev.SYSTEM, {}, seq=2, turn_id="t1")) == []
    paused = log.feed(Event(ev.INPUT_REQUIRED, {"request_id": "req_1"}, seq=3, turn_id="t1"))
    assert paused[0]["stop_reason"]["type"] == "requires_action"
    resumed = log.feed(ev.text_event("p", "ok"))
    assert resumed == []  # an event with no seq is not in the log yet
    resumed = log.feed(Event(ev.TEXT, {"part": {"id": "p", "text": "ok"}}, seq=4, turn_id="t1"))
    assert [(e["type"], e["seq"]) for e in resumed] == [("session.status_running", 7)]
    closed = log.feed(Event(ev.DONE, {"status": "completed"}, seq=5, turn_id="t1"))
    assert [(e["type"], e["seq"]) for e in closed] == [
        ("agent.message", 8),
        ("session.status_idle", 10),
    ]


def test_input_text_reads_strings_items_and_content_blocks() -> None:
    assert input_text("hi") == "hi"
    assert input_text([{"role": "user", "content": [{"type": "input_text", "text": "a"}]}]) == "a"
    assert input_text([{"type": "text", "text": "a"}, {"type": "image"}, "b"]) == "a\nb"
    assert input_text({"weird": 1}) == ""


def test_a_chat_history_splits_into_earlier_turns_and_the_newest_user_message() -> None:
    history = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": [{"type": "text", "text": "answer"}]},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1"}]},  # no text
        {"role": "narrator", "content": "not a chat role"},
        {"role": "user", "content": [{"type": "text", "text": "second"}]},
        {"role": "assistant", "content": "prefill"},
    ]
    assert split_turns(history) == (
        [("system", "Be brief."), ("user", "first"), ("assistant", "answer")],
        "second",
    )
    assert split_turns([{"role": "user", "content": "only"}]) == ([], "only")
    assert split_turns([{"role": "system", "content": "x"}]) == ([], "")


def test_history_is_framed_before_the_newest_message() -> None:
    assert with_history([], "hello") == "hello"
    framed = with_history([("system", "Be brief."), ("user", "Remember 7.")], "What was it?")
    assert framed == (
        "<conversation_history>\n"
        f"{HISTORY_PREAMBLE}\n"
        '<message role="system">\nBe brief.\n</message>\n'
        '<message role="user">\nRemember 7.\n</message>\n'
        "</conversation_history>\n"
        "\n"
        "What was it?"
    )
