"""OpenAI Responses as a projection of a Karta turn (spec §2.6.1).

`ResponsesStream` emits the named SSE events the OpenAI SDK reads — `response.created`,
`response.in_progress`, the output item and content part opening, `response.output_text.delta`
chunks, their closing, then `response.completed` (or `response.failed`, or
`response.incomplete` when the turn waits for an approval); `response_object` is the unary
answer. One assistant message with one `output_text` part carries the turn's text."""

from __future__ import annotations

from typing import Any

from karta.core import events as ev
from karta.core.events import Event
from karta.core.sse import Frame
from karta.core.turn_fold import TurnOutcome
from karta.dataplane.adapters.common import Stamp

STATUS = {"completed": "completed", "paused": "incomplete", "running": "in_progress"}


def item_id(stamp: Stamp) -> str:
    return "msg_" + stamp.id.removeprefix("resp_")


def message_item(stamp: Stamp, text: str, status: str) -> dict[str, Any]:
    return {
        "id": item_id(stamp),
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": [output_text(text)] if status != "in_progress" else [],
    }


def output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def response_object(
    stamp: Stamp, outcome: TurnOutcome, previous_response_id: str | None = None
) -> dict[str, Any]:
    text = outcome.text
    status = STATUS.get(outcome.public_status, "failed")
    done = status != "in_progress"
    body: dict[str, Any] = {
        "id": stamp.id,
        "object": "response",
        "created_at": stamp.created,
        "status": status,
        "model": stamp.model,
        "output": [message_item(stamp, text, "completed" if done else "in_progress")]
        if done or text
        else [],
        "output_text": text,
        "previous_response_id": previous_response_id,
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "metadata": {},
        "parallel_tool_calls": False,
        "temperature": None,
        "tool_choice": "auto",
        "tools": [],
        "top_p": None,
        "usage": {
            "input_tokens": outcome.tokens[0],
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": outcome.tokens[1],
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": sum(outcome.tokens),
        }
        if done
        else None,
        "karta_session_id": stamp.session_id,
    }
    if status == "failed":
        body["error"] = outcome.error
    if status == "incomplete":
        body["incomplete_details"] = {"reason": "pending_input"}
        body["karta_pending_input"] = outcome.pending_input
    return body


class ResponsesStream:
    def __init__(self, stamp: Stamp, previous_response_id: str | None = None) -> None:
        self.stamp = stamp
        self.previous = previous_response_id
        self.outcome = TurnOutcome()
        self.seq = 0

    def _frame(self, kind: str, **data: Any) -> Frame:
        self.seq += 1
        return Frame(kind, {"type": kind, "sequence_number": self.seq, **data})

    def _response(self) -> dict[str, Any]:
        return response_object(self.stamp, self.outcome, self.previous)

    def _where(self) -> dict[str, Any]:
        return {"item_id": item_id(self.stamp), "output_index": 0, "content_index": 0}

    def start(self) -> list[Frame]:
        return [
            self._frame("response.created", response=self._response()),
            self._frame("response.in_progress", response=self._response()),
            self._frame(
                "response.output_item.added",
                output_index=0,
                item=message_item(self.stamp, "", "in_progress"),
            ),
            self._frame("response.content_part.added", **self._where(), part=output_text("")),
        ]

    def feed(self, event: Event) -> list[Frame]:
        frames: list[Frame] = []
        delta = self.outcome.feed(event)
        if delta:
            frames.append(
                self._frame("response.output_text.delta", **self._where(), delta=delta, logprobs=[])
            )
        if event.type not in ev.PAUSING_TYPES:
            return frames
        text = self.outcome.text
        frames += [
            self._frame("response.output_text.done", **self._where(), text=text, logprobs=[]),
            self._frame("response.content_part.done", **self._where(), part=output_text(text)),
            self._frame(
                "response.output_item.done",
                output_index=0,
                item=message_item(self.stamp, text, "completed"),
            ),
        ]
        final = self._response()
        kind = {"completed": "response.completed", "incomplete": "response.incomplete"}.get(
            final["status"], "response.failed"
        )
        frames.append(self._frame(kind, response=final))
        return frames
