"""The event envelope, event types, SSE encoding/decoding and the turn accumulator.

A turn is a sequence of typed events. Every other surface (SSE, unary JSON, the CLI) is a
projection of that one sequence. Text and reasoning events are deltas: `data.part.text` holds the
new chunk only (`data.delta` is true) and clients append by `part.id`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

TEXT = "text"
REASONING = "reasoning"
TOOL_USE = "tool_use"
STEP_START = "step_start"
STEP_FINISH = "step_finish"
INPUT_REQUIRED = "input_required"
ERROR = "error"
DONE = "done"
SYSTEM = "system"

EVENT_TYPES = frozenset(
    {TEXT, REASONING, TOOL_USE, STEP_START, STEP_FINISH, INPUT_REQUIRED, ERROR, DONE, SYSTEM}
)
# Events after which a live turn is waiting: for the end of the turn, or for a decision.
PAUSING_TYPES = frozenset({DONE, INPUT_REQUIRED})


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Event:
    type: str
    data: dict[str, Any] = field(default_factory=dict)
    source: str = "karta"
    session_id: str | None = None
    turn_id: str | None = None
    timestamp: int = field(default_factory=now_ms)
    raw: dict[str, Any] | None = None
    seq: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "type": self.type,
            "source": self.source,
            "session_id": self.session_id,
            "turn_id": self.turn_id,
            "timestamp": self.timestamp,
            "data": self.data,
            "raw": self.raw,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Event:
        return cls(
            type=d["type"],
            data=d.get("data") or {},
            source=d.get("source", "karta"),
            session_id=d.get("session_id"),
            turn_id=d.get("turn_id"),
            timestamp=d.get("timestamp") or 0,
            raw=d.get("raw"),
            seq=d.get("seq"),
        )

    @property
    def part(self) -> dict[str, Any]:
        part = self.data.get("part")
        return part if isinstance(part, dict) else {}


def text_event(part_id: str, chunk: str, *, kind: str = TEXT, source: str = "karta") -> Event:
    return Event(
        kind, {"part": {"id": part_id, "type": kind, "text": chunk}, "delta": True}, source
    )


def error_event(message: str, code: str = "harness_error", **details: Any) -> Event:
    return Event(ERROR, {"message": message, "code": code, **details})


def done_event(
    usage: dict[str, Any] | None = None, *, status: str = "completed", **extra: Any
) -> Event:
    return Event(DONE, {"status": status, "usage": usage or empty_usage(), **extra})


def empty_usage() -> dict[str, int | None]:
    return {"input_tokens": None, "output_tokens": None, "total_tokens": None}


# --- SSE -------------------------------------------------------------------------------------


def _compact(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def encode_sse(event: Event) -> bytes:
    """One SSE frame per event; the event's `seq` is the frame id, for `Last-Event-ID`."""
    head = f"id: {event.seq}\n" if event.seq is not None else ""
    return f"{head}event: {event.type}\ndata: {_compact(event.to_dict())}\n\n".encode()


KEEPALIVE_FRAME = b": keep-alive\n\n"


@dataclass
class SSEFrame:
    event: str | None
    data: str
    id: str | None


def iter_sse_frames(lines: Iterable[str]) -> Iterator[SSEFrame]:
    """Decode SSE frames from an iterable of text lines (without their newlines)."""
    event: str | None = None
    frame_id: str | None = None
    data: list[str] = []
    for line in lines:
        if line == "":
            if data:
                yield SSEFrame(event, "\n".join(data), frame_id)
            event, frame_id, data = None, None, []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
        elif name == "id":
            frame_id = value
    if data:
        yield SSEFrame(event, "\n".join(data), frame_id)


def iter_sse_events(lines: Iterable[str]) -> Iterator[Event]:
    for frame in iter_sse_frames(lines):
        yield Event.from_dict(json.loads(frame.data))


# --- accumulation ----------------------------------------------------------------------------


@dataclass
class TurnAccumulator:
    """Folds a turn's events into parts, final text and usage (for unary responses and the CLI)."""

    parts: dict[str, dict[str, Any]] = field(default_factory=dict)
    usage: dict[str, Any] = field(default_factory=empty_usage)
    message_id: str | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    status: str | None = None
    pending_input: dict[str, Any] | None = None

    def add(self, event: Event) -> None:
        part = event.part
        if event.type in (TEXT, REASONING) and part.get("id"):
            slot = self.parts.setdefault(
                part["id"], {"id": part["id"], "type": event.type, "text": "", "data": {}}
            )
            slot["text"] += part.get("text", "")
        elif event.type == TOOL_USE and part.get("id"):
            slot = self.parts.setdefault(part["id"], {"id": part["id"], "type": "tool", "text": ""})
            slot["data"] = {**slot.get("data", {}), **part}
        elif event.type == INPUT_REQUIRED:
            self.pending_input = event.data
            rid = event.data.get("request_id", f"input-{len(self.parts)}")
            self.parts[rid] = {"id": rid, "type": "input-required", "text": "", "data": event.data}
        elif event.type == ERROR:
            self.errors.append(event.data)
            pid = f"error-{len(self.errors)}"
            self.parts[pid] = {
                "id": pid,
                "type": "error",
                "text": event.data.get("message", ""),
                "data": event.data,
            }
        elif event.type == DONE:
            self.status = event.data.get("status")
            if event.data.get("usage"):
                self.usage = event.data["usage"]
            self.pending_input = None
        if self.message_id is None and part.get("messageID"):
            self.message_id = part["messageID"]

    def extend(self, events: Iterable[Event]) -> TurnAccumulator:
        for event in events:
            self.add(event)
        return self

    @property
    def text(self) -> str:
        texts = [p["text"] for p in self.parts.values() if p["type"] == TEXT and p["text"]]
        return "\n\n".join(texts).strip()
