"""Server-sent events, encoded and decoded in one place.

Every stream Karta writes (native events, the OpenAI and Anthropic projections, the
Managed-Agents log) is made of `Frame`s encoded here, and every stream Karta reads (the CLI and
the clients, OpenCode's `/event`) is decoded here. A native event's frame carries its `seq` as
the SSE `id`, which a reconnecting client sends back as `Last-Event-ID`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from karta.core.errors import BadRequest
from karta.core.events import Event

KEEPALIVE = b": keep-alive\n\n"
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
MEDIA_TYPE = "text/event-stream"


@dataclass(frozen=True)
class Frame:
    """One SSE frame: an event name (None for bare `data:` frames), its data (JSON-able, or a
    literal string such as OpenAI's `[DONE]`) and an id."""

    event: str | None
    data: Any
    id: int | str | None = None

    def encode(self) -> bytes:
        head = f"id: {self.id}\n" if self.id is not None else ""
        if self.event is not None:
            head += f"event: {self.event}\n"
        body = self.data if isinstance(self.data, str) else compact_json(self.data)
        return f"{head}data: {body}\n\n".encode()


def compact_json(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def event_frame(event: Event) -> Frame:
    """A native Karta event as a frame: named by its type, its seq as the id."""
    return Frame(event.type, event.to_dict(), event.seq)


def encode_event(event: Event) -> bytes:
    """A logged event's frame, encoded once however many subscribers it goes to."""
    if event.encoded is None:
        event.encoded = event_frame(event).encode()
    return event.encoded


@dataclass(frozen=True)
class EventFrame:
    """A native event's frame, encoded through the event's own cache (`encode_event`)."""

    event: Event

    def encode(self) -> bytes:
        return encode_event(self.event)


def cursor(after: int | None, last_event_id: str | None) -> int:
    """Where a stream resumes: `?after=` wins, else the `Last-Event-ID` header, else the start."""
    if after is not None:
        return after
    if last_event_id is None:
        return 0
    try:
        value = int(last_event_id)
    except ValueError:
        value = -1
    if value < 0:
        raise BadRequest("Last-Event-ID must be an event seq (a non-negative integer)")
    return value


# --- decoding ----------------------------------------------------------------------------------


@dataclass
class RawFrame:
    event: str | None
    data: str
    id: str | None


class Decoder:
    """Feeds on lines (without their newlines) and returns each frame as it completes."""

    def __init__(self) -> None:
        self._event: str | None = None
        self._id: str | None = None
        self._data: list[str] = []

    def line(self, line: str) -> RawFrame | None:
        if line == "":
            return self.flush()
        if line.startswith(":"):
            return None  # a comment: keep-alives
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id":
            self._id = value
        return None

    def flush(self) -> RawFrame | None:
        frame = RawFrame(self._event, "\n".join(self._data), self._id) if self._data else None
        self._event, self._id, self._data = None, None, []
        return frame


def iter_frames(lines: Iterable[str]) -> Iterator[RawFrame]:
    decoder = Decoder()
    for line in lines:
        if (frame := decoder.line(line)) is not None:
            yield frame
    if (frame := decoder.flush()) is not None:
        yield frame


async def aiter_frames(lines: AsyncIterable[str]) -> AsyncIterable[RawFrame]:
    decoder = Decoder()
    async for line in lines:
        if (frame := decoder.line(line)) is not None:
            yield frame
    if (frame := decoder.flush()) is not None:
        yield frame


def iter_events(lines: Iterable[str]) -> Iterator[Event]:
    """Karta events from a native SSE stream."""
    for frame in iter_frames(lines):
        yield Event.from_dict(json.loads(frame.data))


async def aiter_events(lines: AsyncIterable[str]) -> AsyncIterable[Event]:
    async for frame in aiter_frames(lines):
        yield Event.from_dict(json.loads(frame.data))
