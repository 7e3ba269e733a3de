"""The one fold of a turn's events into its outcome, shared by the data plane (the unary reply,
every adapter projection) and the clients (the SDK's streams, the CLI).

`TurnOutcome` folds a turn's events, as they arrive or all at once: the text as true deltas, the
parts, usage, errors, the pending input and the turn's state. The states and the transitions
between them are the data plane's (`karta.dataplane.runtime.lifecycle`); a client only reads
them off the events.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from karta.core import events as ev
from karta.core.events import Event


class TurnState(StrEnum):
    RUNNING = "running"
    AWAITING_INPUT = "awaiting_input"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


ENDED_STATES = frozenset({TurnState.COMPLETED, TurnState.FAILED, TurnState.CANCELLED})


# The turn's text parts, in order, joined by a blank line; the concatenated deltas equal it.
PART_SEPARATOR = "\n\n"
PENDING_KEYS = ("request_id", "kind", "tool", "target", "input", "message", "options", "expires_at")


def pending_input(event: Event) -> dict[str, Any]:
    """The public part of an `input_required` event: what to decide, and how."""
    return {k: event.data.get(k) for k in PENDING_KEYS}


@dataclass
class TurnOutcome:
    """A turn's events folded into its outcome. `feed` returns the text delta the event adds to
    the turn's one text (a new part after earlier text starts with `PART_SEPARATOR`)."""

    state: TurnState = TurnState.RUNNING
    text: str = ""
    parts: dict[str, dict[str, Any]] = field(default_factory=dict)
    usage: dict[str, Any] = field(default_factory=ev.empty_usage)
    errors: list[dict[str, Any]] = field(default_factory=list)
    pending_input: dict[str, Any] | None = None
    message_id: str | None = None
    _text_part: str | None = None

    @classmethod
    def of(cls, events: Iterable[Event]) -> TurnOutcome:
        outcome = cls()
        for event in events:
            outcome.feed(event)
        return outcome

    def feed(self, event: Event) -> str:
        part = event.part
        if self.paused and event.type not in (ev.INPUT_REQUIRED, ev.DONE, ev.SYSTEM):
            self.state, self.pending_input = TurnState.RUNNING, None  # the decision came
        if self.message_id is None and part.get("messageID"):
            self.message_id = part["messageID"]
        if event.type in (ev.TEXT, ev.REASONING) and part.get("id"):
            return self._chunk(event.type, part)
        if event.type == ev.TOOL_USE and part.get("id"):
            slot = self.parts.setdefault(part["id"], {"id": part["id"], "type": "tool", "text": ""})
            slot["data"] = {**slot.get("data", {}), **part}
        elif event.type == ev.INPUT_REQUIRED:
            self.state = TurnState.AWAITING_INPUT
            self.pending_input = pending_input(event)
            rid = event.data.get("request_id") or f"input-{len(self.parts)}"
            self.parts[rid] = {"id": rid, "type": "input-required", "text": "", "data": event.data}
        elif event.type == ev.ERROR:
            self.errors.append(event.data)
            pid = f"error-{len(self.errors)}"
            message = event.data.get("message", "")
            self.parts[pid] = {"id": pid, "type": "error", "text": message, "data": event.data}
        elif event.type == ev.DONE:
            self.state = ended_state(event)
            self.pending_input = None
            if event.data.get("usage"):
                self.usage = event.data["usage"]
        return ""

    def _chunk(self, kind: str, part: dict[str, Any]) -> str:
        chunk = part.get("text") or ""
        if not isinstance(chunk, str):
            return ""
        slot = self.parts.setdefault(
            part["id"], {"id": part["id"], "type": kind, "text": "", "data": {}}
        )
        slot["text"] += chunk
        if kind != ev.TEXT or not chunk:
            return ""
        if self.text and part["id"] != self._text_part:
            chunk = PART_SEPARATOR + chunk
        self._text_part = part["id"]
        self.text += chunk
        return chunk

    @property
    def finished(self) -> bool:
        """The turn ended, or paused for a decision: a unary caller has its answer."""
        return self.state is not TurnState.RUNNING

    @property
    def paused(self) -> bool:
        return self.state is TurnState.AWAITING_INPUT

    @property
    def public_status(self) -> str:
        """The status a unary reply states: how the turn ended, or `paused`."""
        return "paused" if self.paused else str(self.state)

    @property
    def tokens(self) -> tuple[int, int]:
        """Input and output tokens the turn reported (0 when the harness reported none)."""
        return int(self.usage.get("input_tokens") or 0), int(self.usage.get("output_tokens") or 0)

    @property
    def error(self) -> dict[str, Any] | None:
        """Why a turn that did not complete ended: its last error's code and message."""
        if self.state in (TurnState.COMPLETED, TurnState.RUNNING, TurnState.AWAITING_INPUT):
            return None
        last = self.errors[-1] if self.errors else {}
        return {
            "code": last.get("code") or f"turn_{self.state}",
            "message": last.get("message") or f"the turn ended {self.state}",
        }


def ended_state(done: Event) -> TurnState:
    """The state a `done` event ends its turn in (anything unknown is a failure)."""
    try:
        state = TurnState(str(done.data.get("status")))
    except ValueError:
        return TurnState.FAILED
    return state if state in ENDED_STATES else TurnState.FAILED
