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

from karta import events as ev
from karta.dataplane.adapters.anthropic_messages import MessagesStream, message_object
from karta.dataplane.adapters.common import Stamp, input_text, last_user_text
from karta.dataplane.adapters.managed_agents import ManagedAgentsLog, karta_cursor, project_log
from karta.dataplane.adapters.openai_chat import ChatStream, chat_completion
from karta.dataplane.adapters.openai_responses import ResponsesStream, response_object
from karta.events import Event
from karta.runtime.lifecycle import TurnOutcome

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


@pytest.mark.parametrize("name", RECORDED)
def test_the_managed_agents_log_replays_the_same_from_every_cursor(name: str) -> None:
    events = recorded(name)
    full = project_log(events)
    seqs = [e["seq"] for e in full]
    assert seqs == sorted(set(seqs)), "strictly increasing"
    for after in range(0, 2 * (events[-1].seq or 0) + 2):
        # What the stream route reads: the event at the cursor (context) and all after it.
        start = karta_cursor(after)
        tail = [e for e in events if (e.seq or 0) >= max(1, start)]
        assert project_log(tail, after) == [e for e in full if e["seq"] > after], after


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
    assert [e["type"] for e in resumed] == ["session.status_running", "agent.message"]
    assert [e["seq"] for e in resumed] == [7, 8]


def test_input_text_reads_strings_items_and_content_blocks() -> None:
    assert input_text("hi") == "hi"
    assert input_text([{"role": "user", "content": [{"type": "input_text", "text": "a"}]}]) == "a"
    assert input_text([{"type": "text", "text": "a"}, {"type": "image"}, "b"]) == "a\nb"
    assert input_text({"weird": 1}) == ""
    history = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "answer"},
        {"role": "user", "content": [{"type": "text", "text": "second"}]},
    ]
    assert last_user_text(history) == "second"
    assert last_user_text([{"role": "system", "content": "x"}]) == ""
