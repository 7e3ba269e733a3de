"""Anthropic Messages as a projection of a Karta turn.

`MessagesStream` emits the named SSE events the Anthropic SDK reads — `message_start`, one text
block (`content_block_start`, `content_block_delta` chunks, `content_block_stop`),
`message_delta` with the stop reason and usage, `message_stop` — or an `error` event when the
turn fails; `message_object` is the unary answer. A turn waiting for an approval stops with
`pause_turn` and says what to decide in `karta_pending_input`."""

from __future__ import annotations

from typing import Any

from karta.core import events as ev
from karta.core.events import Event
from karta.core.sse import Frame
from karta.core.turn_fold import TurnOutcome
from karta.dataplane.adapters.common import Stamp

STOP_REASONS = {"completed": "end_turn", "paused": "pause_turn"}


def usage(outcome: TurnOutcome) -> dict[str, int]:
    input_tokens, output_tokens = outcome.tokens
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }


def error_body(error: dict[str, Any] | None, kind: str = "api_error") -> dict[str, Any]:
    error = error or {"code": "turn_failed", "message": "the turn failed"}
    return {"type": "error", "error": {"type": kind, **error}}


def message_object(stamp: Stamp, outcome: TurnOutcome) -> dict[str, Any]:
    text = outcome.text
    body: dict[str, Any] = {
        "id": stamp.id,
        "type": "message",
        "role": "assistant",
        "model": stamp.model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": STOP_REASONS.get(outcome.public_status),
        "stop_sequence": None,
        "usage": usage(outcome),
        "karta_session_id": stamp.session_id,
    }
    if outcome.pending_input is not None:
        body["karta_pending_input"] = outcome.pending_input
    return body


class MessagesStream:
    def __init__(self, stamp: Stamp) -> None:
        self.stamp = stamp
        self.outcome = TurnOutcome()

    def start(self) -> list[Frame]:
        message = message_object(self.stamp, TurnOutcome())
        message["content"] = []
        return [
            Frame("message_start", {"type": "message_start", "message": message}),
            Frame(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
            ),
        ]

    def feed(self, event: Event) -> list[Frame]:
        frames: list[Frame] = []
        delta = self.outcome.feed(event)
        if delta:
            frames.append(
                Frame(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": delta},
                    },
                )
            )
        if event.type not in ev.PAUSING_TYPES:
            return frames
        stop = STOP_REASONS.get(self.outcome.public_status)
        if stop is None:
            # The SDK raises the error event as an APIStatusError.
            return [*frames, Frame("error", error_body(self.outcome.error))]
        message_delta: dict[str, Any] = {
            "type": "message_delta",
            "delta": {"stop_reason": stop, "stop_sequence": None},
            "usage": usage(self.outcome),
        }
        if self.outcome.pending_input is not None:
            message_delta["karta_pending_input"] = self.outcome.pending_input
        return [
            *frames,
            Frame("content_block_stop", {"type": "content_block_stop", "index": 0}),
            Frame("message_delta", message_delta),
            Frame("message_stop", {"type": "message_stop"}),
        ]
