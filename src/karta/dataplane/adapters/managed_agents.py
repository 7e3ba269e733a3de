"""The Managed-Agents event log as a projection of a Karta session's event log (spec §2.6.3).

Each Karta event maps to at most one Managed-Agents event, and the first event after an idle
point (the log's start, a turn's end, a pause for an approval) is preceded by
`session.status_running`. Sequence numbers derive from the Karta `seq`, so the projected log
is stable, replayable from any cursor and needs no storage of its own: the event projected
from Karta event `n` has `seq = 2n`, the `session.status_running` before it `2n - 1`.

| Karta | Managed Agents |
|---|---|
| `text` | `agent.message {content: [{type: text, text: <chunk>}]}` (chunks: append) |
| `tool_use` running | `agent.tool_use {name, input, tool_use_id}` |
| `tool_use` completed / error | `agent.tool_result {tool_use_id, content, is_error}` |
| `input_required` | `session.status_idle {stop_reason: {type: requires_action, request_id, …}}` |
| `done` | `session.status_idle {stop_reason: {type: end_turn | interrupted | error}, usage}` |
| `error` | `session.error {code, message, error: {type, message}}` (not for an interrupt) |
| others | nothing |
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from karta import events as ev
from karta.events import Event
from karta.sse import Frame

RUNNING = "session.status_running"
IDLE = "session.status_idle"
ERROR = "session.error"
STOP_TYPES = {"completed": "end_turn", "cancelled": "interrupted"}
# Only these are allowed in; the rest of the managed-agents vocabulary is not implemented.
USER_EVENTS = ("user.message", "user.tool_confirmation", "user.interrupt")


def karta_cursor(after: int) -> int:
    """The Karta `seq` after which the projected events with `seq > after` start."""
    return max(0, after) // 2


def processed_at(event: Event) -> str:
    return datetime.fromtimestamp(event.timestamp / 1000, UTC).isoformat().replace("+00:00", "Z")


def _ends_idle(event: Event) -> bool:
    """Events that end an idle session's turn without it running again (an interrupt of a
    paused turn): no `session.status_running` before them."""
    return event.type == ev.DONE or (
        event.type == ev.ERROR and event.data.get("code") == "turn_cancelled"
    )


class ManagedAgentsLog:
    """Projects Karta events, in log order, to Managed-Agents events. `idle` says whether the
    session was idle before the first event fed (true at the start of a log)."""

    def __init__(self, *, idle: bool = True) -> None:
        self.idle = idle

    @staticmethod
    def after_context(event: Event | None) -> ManagedAgentsLog:
        """A projection that continues after `event` (None: from the log's start)."""
        return ManagedAgentsLog(idle=event is None or event.type in ev.PAUSING_TYPES)

    def _wire(self, event: Event, seq: int, kind: str, **data: Any) -> dict[str, Any]:
        return {
            "id": f"sevt_{seq}",
            "seq": seq,
            "type": kind,
            "processed_at": processed_at(event),
            **data,
        }

    def feed(self, event: Event) -> list[dict[str, Any]]:
        if event.seq is None:
            return []
        out: list[dict[str, Any]] = []
        if self.idle and not _ends_idle(event):
            out.append(self._wire(event, 2 * event.seq - 1, RUNNING))
            self.idle = False
        projected = self._project(event)
        if projected is not None:
            kind, data = projected
            out.append(self._wire(event, 2 * event.seq, kind, **data))
        if event.type in ev.PAUSING_TYPES:
            self.idle = True
        return out

    def _project(self, event: Event) -> tuple[str, dict[str, Any]] | None:
        data, part = event.data, event.part
        if event.type == ev.TEXT:
            chunk = part.get("text")
            if isinstance(chunk, str) and chunk:
                return "agent.message", {"content": [{"type": "text", "text": chunk}]}
        elif event.type == ev.TOOL_USE:
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
    the projected `after`: the Karta event at the cursor is read as context only."""

    def __init__(self, after: int) -> None:
        self.after = after
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
        return [
            Frame(item["type"], item, item["seq"])
            for item in self._log.feed(event)
            if item["seq"] > self.after
        ]
