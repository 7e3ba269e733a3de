"""The Managed-Agents event log as a projection of a Karta session's event log (spec §2.6.3).

An assistant message is one `agent.message` carrying its whole text: the Karta `text` events
of one part, closed by the next event that is not a chunk of that part (another part's text,
a tool call, a step's end, the pause or the end of the turn). The first event after an idle
point (the log's start, a turn's end, a pause for an approval) is preceded by
`session.status_running`. Sequence numbers derive from the Karta `seq`, so the projected log is
stable, replayable from any cursor and needs no storage of its own:

- the event projected from Karta event `n` has `seq = 2n`, the `session.status_running` before
  it `2n - 1`;
- an `agent.message` has `seq = 2m`, `m` being its part's first Karta event; it is emitted when
  the part closes (nothing is projected from the part's other chunks, so seqs still increase).

| Karta | Managed Agents |
|---|---|
| `text` (one part) | `agent.message {content: [{type: text, text: <the part's whole text>}]}` |
| `tool_use` running | `agent.tool_use {name, input, tool_use_id}` |
| `tool_use` completed / error | `agent.tool_result {tool_use_id, content, is_error}` |
| `input_required` | `session.status_idle {stop_reason: {type: requires_action, request_id, …}}` |
| `done` | `session.status_idle {stop_reason: {type: end_turn | interrupted | error}, usage}` |
| `error` | `session.error {code, message, error: {type, message}}` (not for an interrupt) |
| others | nothing |

A stream that asks for previews (`event_deltas=agent.message`, Anthropic's name) also gets,
while a message is produced, `event_start {event: {type: agent.message, id}}` at its first
text and an `event_delta {event_id, delta: {type: content_delta, index: 0, content: {type:
text, text: <chunk>}}}` per chunk: frames without a seq (nor an SSE id), never in the log,
concluded by the `agent.message` with that id. A turn stopped mid-message still logs the text
it produced.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from karta.core import events as ev
from karta.core.events import Event
from karta.core.sse import Frame

RUNNING = "session.status_running"
IDLE = "session.status_idle"
ERROR = "session.error"
MESSAGE = "agent.message"
EVENT_ID_PREFIX = "sevt_"
STOP_TYPES = {"completed": "end_turn", "cancelled": "interrupted"}
# Only these are allowed in; the rest of the managed-agents vocabulary is not implemented.
USER_EVENTS = ("user.message", "user.tool_confirmation", "user.interrupt")
# The event types a stream may ask previews of (`event_deltas`), as the SDK names them; Karta's
# log has no `agent.thinking`, so asking for it previews nothing.
Previewable = Literal["agent.message", "agent.thinking"]


def karta_cursor(after: int) -> int:
    """The Karta `seq` after which the projected events with `seq > after` start."""
    return max(0, after) // 2


def event_id(seq: int) -> str:
    return f"{EVENT_ID_PREFIX}{seq}"


def processed_at(event: Event) -> str:
    return datetime.fromtimestamp(event.timestamp / 1000, UTC).isoformat().replace("+00:00", "Z")


def text_content(text: str) -> dict[str, str]:
    return {"type": "text", "text": text}


def chunk_of(event: Event) -> str:
    chunk = event.part.get("text")
    return chunk if isinstance(chunk, str) else ""


@dataclass
class OpenMessage:
    """The assistant message being produced: one text part's chunks so far, and the part's
    latest event. `seq` is None when the part began at or before the cursor: the client has it,
    it is not sent again."""

    part_id: Any
    seq: int | None
    last: Event
    text: str = ""


def _ends_idle(event: Event) -> bool:
    """Events that end an idle session's turn without it running again (an interrupt of a
    paused turn): no `session.status_running` before them."""
    return event.type == ev.DONE or (
        event.type == ev.ERROR and event.data.get("code") == "turn_cancelled"
    )


class ManagedAgentsLog:
    """Projects Karta events, in log order, to Managed-Agents events. `idle` says whether the
    session was idle before the first event fed (true at the start of a log); `message` is the
    assistant message being produced, if any."""

    def __init__(self, *, idle: bool = True, message: OpenMessage | None = None) -> None:
        self.idle = idle
        self.message = message

    @staticmethod
    def after_context(event: Event | None) -> ManagedAgentsLog:
        """A projection that continues after `event` (None: from the log's start). A text
        event at the cursor leaves its part open, as already sent."""
        if event is not None and event.type == ev.TEXT:
            message = OpenMessage(event.part.get("id"), None, event)
            return ManagedAgentsLog(idle=False, message=message)
        return ManagedAgentsLog(idle=event is None or event.type in ev.PAUSING_TYPES)

    def _wire(self, event: Event, seq: int, kind: str, **data: Any) -> dict[str, Any]:
        return {
            "id": event_id(seq),
            "seq": seq,
            "type": kind,
            "processed_at": processed_at(event),
            **data,
        }

    def feed(self, event: Event) -> list[dict[str, Any]]:
        if event.seq is None:
            return []
        out: list[dict[str, Any]] = []
        text = event.type == ev.TEXT
        if self.message is not None and not (text and event.part.get("id") == self.message.part_id):
            out += self._close()
        if self.idle and not _ends_idle(event):
            out.append(self._wire(event, 2 * event.seq - 1, RUNNING))
            self.idle = False
        if text:
            if self.message is None:
                self.message = OpenMessage(event.part.get("id"), 2 * event.seq, event)
            self.message.text += chunk_of(event)
            self.message.last = event
        elif (projected := self._project(event)) is not None:
            kind, data = projected
            out.append(self._wire(event, 2 * event.seq, kind, **data))
        if event.type in ev.PAUSING_TYPES:
            self.idle = True
        return out

    def _close(self) -> list[dict[str, Any]]:
        """The open message, whole (nothing if it was sent before the cursor or is empty)."""
        message, self.message = self.message, None
        if message is None or message.seq is None or not message.text:
            return []
        content = [text_content(message.text)]
        return [self._wire(message.last, message.seq, MESSAGE, content=content)]

    def preview(self, event: Event) -> list[dict[str, Any]]:
        """The preview frames of a text event just fed: `event_start` at the message's first
        text, then its chunk as an `event_delta` (nothing for a message already sent)."""
        message, chunk = self.message, chunk_of(event)
        if event.type != ev.TEXT or message is None or message.seq is None or not chunk:
            return []
        out: list[dict[str, Any]] = []
        if message.text == chunk:  # empty chunks add nothing: this is the first text
            out.append(
                {"type": "event_start", "event": {"type": MESSAGE, "id": event_id(message.seq)}}
            )
        delta = {"type": "content_delta", "index": 0, "content": text_content(chunk)}
        out.append({"type": "event_delta", "event_id": event_id(message.seq), "delta": delta})
        return out

    def _project(self, event: Event) -> tuple[str, dict[str, Any]] | None:
        data, part = event.data, event.part
        if event.type == ev.TOOL_USE:
            state = part.get("state") or {}
            status = state.get("status")
            if status == "running":
                return "agent.tool_use", {
                    "name": part.get("tool"),
                    "input": state.get("input") or {},
                    "tool_use_id": part.get("id"),
                }
            if status in ("completed", "error"):
                output = state.get("output") or state.get("error") or ""
                return "agent.tool_result", {
                    "tool_use_id": part.get("id"),
                    "content": [{"type": "text", "text": str(output)}],
                    "is_error": status == "error",
                }
        elif event.type == ev.INPUT_REQUIRED:
            return IDLE, {
                "stop_reason": {
                    "type": "requires_action",
                    "event_ids": [data.get("request_id")],
                    "request_id": data.get("request_id"),
                    "tool_use_id": data.get("tool_use_id"),
                    "tool": data.get("tool"),
                    "input": data.get("input") or {},
                    "options": ["allow", "deny"],
                    "expires_at": data.get("expires_at"),
                }
            }
        elif event.type == ev.DONE:
            status = str(data.get("status") or "failed")
            usage = data.get("usage") or {}
            return IDLE, {
                "stop_reason": {"type": STOP_TYPES.get(status, "error")},
                "usage": {
                    "input_tokens": int(usage.get("input_tokens") or 0),
                    "output_tokens": int(usage.get("output_tokens") or 0),
                },
            }
        elif event.type == ev.ERROR and data.get("code") != "turn_cancelled":
            code = str(data.get("code") or "error")
            message = str(data.get("message") or "")
            return ERROR, {
                "code": code,
                "message": message,
                "error": {"type": code, "message": message},
            }
        return None


def project_log(events: list[Event], after: int = 0) -> list[dict[str, Any]]:
    """The projected events with `seq > after` of a contiguous run of Karta events; the first
    of them is context (the event just before the cursor) when `after` is past the start."""
    if not events:
        return []
    context = (
        events[0] if karta_cursor(after) > 0 and events[0].seq == karta_cursor(after) else None
    )
    log = ManagedAgentsLog.after_context(context)
    rest = events[1:] if context is not None else events
    return [e for event in rest for e in log.feed(event) if e["seq"] > after]


class ManagedStream:
    """The projected log as SSE frames (`seq` as the frame id), for a stream that resumes after
    the projected `after`: the Karta event at the cursor is read as context only. With
    `previews`, the frames previewing each message (no frame id) come too."""

    def __init__(self, after: int, *, previews: bool = False) -> None:
        self.after = after
        self.previews = previews
        self.start_seq = karta_cursor(after)
        self._log = ManagedAgentsLog() if self.start_seq == 0 else None

    @property
    def replay_from(self) -> int:
        """The Karta seq to subscribe after (one before the cursor, for its context)."""
        return max(0, self.start_seq - 1)

    def sent(self, seq: int) -> bool:
        """Whether what Karta event `seq` projects to is past the client's cursor."""
        return 2 * seq > self.after

    def start(self) -> list[Frame]:
        return []

    def feed(self, event: Event) -> list[Frame]:
        if self._log is None:
            at_cursor = event.seq == self.start_seq
            self._log = ManagedAgentsLog.after_context(event if at_cursor else None)
            if at_cursor:
                return []
        frames = [
            Frame(item["type"], item, item["seq"])
            for item in self._log.feed(event)
            if item["seq"] > self.after
        ]
        if self.previews:
            frames += [Frame(item["type"], item) for item in self._log.preview(event)]
        return frames
