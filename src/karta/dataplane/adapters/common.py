"""What every consumer adapter shares: the turn's text as true deltas, usage, input text
extraction and SSE framing. Pure functions and small folds over Karta events, no I/O."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from karta import events as ev
from karta.errors import KartaError
from karta.events import Event

# The conversational adapters answer with one text: the turn's text parts, in order, joined by
# a blank line (as the native unary `text`), so the concatenated deltas equal the final text.
PART_SEPARATOR = "\n\n"

# A wire frame: an SSE event name (None for bare `data:` frames) and its data (JSON-able, or a
# literal string such as OpenAI's `[DONE]`).
Frame = tuple[str | None, Any]


def encode_frame(frame: Frame, frame_id: int | str | None = None) -> bytes:
    name, data = frame
    head = f"id: {frame_id}\n" if frame_id is not None else ""
    if name is not None:
        head += f"event: {name}\n"
    body = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"{head}data: {body}\n\n".encode()


@dataclass
class TextDeltas:
    """Folds a turn's `text` events into deltas of one text. A chunk of a new part after earlier
    text is prefixed with `PART_SEPARATOR`; nothing is ever sent twice."""

    text: str = ""
    _part: str | None = None

    def feed(self, event: Event) -> str:
        if event.type != ev.TEXT:
            return ""
        part = event.part
        chunk = part.get("text") or ""
        if not isinstance(chunk, str) or not chunk:
            return ""
        part_id = part.get("id")
        if self.text and part_id != self._part:
            chunk = PART_SEPARATOR + chunk
        self._part = part_id
        self.text += chunk
        return chunk


def usage_of(event: Event) -> tuple[int, int]:
    """Input and output tokens a `done` event reports (0 when the harness reported none)."""
    usage = event.data.get("usage") or {}
    return int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0)


@dataclass
class TurnOutcome:
    """How a turn's events ended, in the words every adapter needs."""

    status: str = "running"  # completed | failed | cancelled | paused | running
    error: dict[str, Any] | None = None
    pending_input: dict[str, Any] | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)

    def feed(self, event: Event) -> None:
        if event.type == ev.ERROR:
            self.errors.append(event.data)
        elif event.type == ev.INPUT_REQUIRED:
            self.status = "paused"
            self.pending_input = pending_input(event)
        elif event.type == ev.DONE:
            self.status = str(event.data.get("status") or "failed")
            self.pending_input = None
            self.input_tokens, self.output_tokens = usage_of(event)
            if self.status != "completed":
                last = self.errors[-1] if self.errors else {}
                self.error = {
                    "code": last.get("code") or f"turn_{self.status}",
                    "message": last.get("message") or f"the turn ended {self.status}",
                }

    @property
    def finished(self) -> bool:
        return self.status != "running"


def pending_input(event: Event) -> dict[str, Any]:
    """The public part of an `input_required` event: what to decide, and how."""
    keys = ("request_id", "kind", "tool", "target", "input", "message", "options", "expires_at")
    return {k: event.data.get(k) for k in keys}


def input_text(value: Any) -> str:
    """The text of an OpenAI/Anthropic input: a string as is; from a list of items or content
    blocks, every `text` (and nested `content`), joined by newlines. Unknown shapes give ''."""
    if isinstance(value, str):
        return value
    texts: list[str] = []
    if isinstance(value, dict):
        if isinstance(value.get("text"), str):
            texts.append(value["text"])
        if "content" in value:
            texts.append(input_text(value["content"]))
    elif isinstance(value, list):
        texts.extend(input_text(item) for item in value)
    return "\n".join(t for t in texts if t)


def last_user_text(messages: list[Any], role_key: str = "role") -> str:
    """The text of the last `user` message of a chat history (the harness keeps the rest)."""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get(role_key) == "user":
            return input_text(message.get("content"))
    return ""


@dataclass(frozen=True)
class Stamp:
    """What a projection writes that is not in the events: the response id, its creation time
    (epoch seconds), the model name echoed back and the Karta session it ran on. Chosen by the
    caller, so each projection stays a pure function of (stamp, events)."""

    id: str
    created: int
    model: str
    session_id: str


class TurnFailed(KartaError):
    """A unary adapter call whose turn failed or was interrupted (streams say it in-band)."""

    status = 422
    code = "turn_failed"


def outcome_of(events: list[Event]) -> TurnOutcome:
    outcome = TurnOutcome()
    for event in events:
        outcome.feed(event)
    return outcome


def fold(events: list[Event]) -> tuple[str, TurnOutcome]:
    """A whole turn at once: its text (the concatenated deltas) and how it ended."""
    text, outcome = TextDeltas(), TurnOutcome()
    for event in events:
        text.feed(event)
        outcome.feed(event)
    return text.text, outcome
