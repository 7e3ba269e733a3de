"""OpenAI Chat Completions as a projection of a Karta turn (spec §2.6.2).

`ChatStream` turns the turn's events into `chat.completion.chunk` frames (bare `data:` lines:
a role chunk, content deltas, a finish chunk, `[DONE]`); `chat_completion` folds them into one
`chat.completion`. Tools, approvals and reasoning run inside the harness and are flattened away:
only the assistant's text, the finish and the usage are projected."""

from __future__ import annotations

from typing import Any

from karta.core import events as ev
from karta.core.events import Event
from karta.core.sse import Frame
from karta.core.turn_fold import TurnOutcome
from karta.dataplane.adapters.common import Stamp

DONE_FRAME = Frame(None, "[DONE]")
PENDING = "pending_input"  # finish_reason of a turn that waits for an approval


def usage(outcome: TurnOutcome) -> dict[str, int]:
    prompt, completion = outcome.tokens
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def error_body(outcome: TurnOutcome) -> dict[str, Any]:
    error = outcome.error or {"code": "turn_failed", "message": "the turn failed"}
    return {"message": error["message"], "type": "server_error", "param": None, **error}


def finish_reason(outcome: TurnOutcome) -> str:
    return PENDING if outcome.paused else "stop"


class ChatStream:
    def __init__(self, stamp: Stamp, *, include_usage: bool = False) -> None:
        self.stamp = stamp
        self.include_usage = include_usage
        self.outcome = TurnOutcome()

    def _chunk(self, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> Frame:
        return Frame(
            None,
            {
                "id": self.stamp.id,
                "object": "chat.completion.chunk",
                "created": self.stamp.created,
                "model": self.stamp.model,
                "system_fingerprint": None,
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                ],
                "karta_session_id": self.stamp.session_id,
                **extra,
            },
        )

    def start(self) -> list[Frame]:
        return [self._chunk({"role": "assistant", "content": ""})]

    def feed(self, event: Event) -> list[Frame]:
        frames: list[Frame] = []
        delta = self.outcome.feed(event)
        if delta:
            frames.append(self._chunk({"content": delta}))
        if event.type not in ev.PAUSING_TYPES:
            return frames
        if self.outcome.public_status in ("completed", "paused"):
            extra: dict[str, Any] = {}
            if self.outcome.pending_input is not None:
                extra["karta_pending_input"] = self.outcome.pending_input
            if not self.include_usage:
                extra["usage"] = usage(self.outcome)
            frames.append(self._chunk({}, finish_reason(self.outcome), **extra))
            if self.include_usage:
                last = self._chunk({}, usage=usage(self.outcome))
                last.data["choices"] = []
                frames.append(last)
        else:
            # The SDK raises an APIError on a chunk carrying `error`.
            frames.append(Frame(None, {"error": error_body(self.outcome)}))
        frames.append(DONE_FRAME)
        return frames


def chat_completion(stamp: Stamp, outcome: TurnOutcome) -> dict[str, Any]:
    """The unary answer: the turn folded into one `chat.completion` (a failed turn is the
    caller's to refuse: see `TurnOutcome.error`)."""
    text = outcome.text
    body: dict[str, Any] = {
        "id": stamp.id,
        "object": "chat.completion",
        "created": stamp.created,
        "model": stamp.model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "logprobs": None,
                "finish_reason": finish_reason(outcome),
            }
        ],
        "usage": usage(outcome),
        "karta_session_id": stamp.session_id,
    }
    if outcome.pending_input is not None:
        body["karta_pending_input"] = outcome.pending_input
    return body
