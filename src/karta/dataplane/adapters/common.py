"""What every consumer adapter shares: the call's stamp, the error of a failed unary call and
input text extraction. The fold of a turn's events is `karta.runtime.lifecycle.TurnOutcome`;
SSE framing is `karta.sse`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from karta.errors import KartaError


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
