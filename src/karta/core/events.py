"""The event envelope and event types.

A turn is a sequence of typed events. Every other surface (SSE, unary JSON, the CLI, the
adapters) is a projection of that one sequence (SSE framing is in `karta.core.sse`, the fold of a
turn into its outcome in `karta.dataplane.runtime.lifecycle`). Text and reasoning events are deltas:
`data.part.text` holds the new chunk only (`data.delta` is true) and clients append by `part.id`.

`participant_name` and `participant_type` name the participant whose message the event's turn
answers (null when the message named nobody); a `message` event is a participant's message
itself: the first event of a turn sent as a participant, or one the gateway delivered.
"""

from __future__ import annotations

import time
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
MESSAGE = "message"

EVENT_TYPES = frozenset(
    {
        TEXT,
        REASONING,
        TOOL_USE,
        STEP_START,
        STEP_FINISH,
        INPUT_REQUIRED,
        ERROR,
        DONE,
        SYSTEM,
        MESSAGE,
    }
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
    participant_name: str | None = None
    participant_type: str | None = None
    # Its native SSE frame, once encoded (`karta.core.sse.encode_event`): a logged event never
    # changes, and a replica sends the same frame to every subscriber of its session.
    encoded: bytes | None = field(default=None, repr=False, compare=False)

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
            "participant_name": self.participant_name,
            "participant_type": self.participant_type,
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
            participant_name=d.get("participant_name"),
            participant_type=d.get("participant_type"),
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


def usage_of(
    input_tokens: int, output_tokens: int, cache_read: int = 0, cache_write: int = 0
) -> dict[str, int]:
    """A `done` event's usage: `input_tokens` already counts the cached ones."""
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens,
        "cache_read_tokens": cache_read,
        "cache_write_tokens": cache_write,
    }


def empty_usage() -> dict[str, int | None]:
    return {"input_tokens": None, "output_tokens": None, "total_tokens": None}
