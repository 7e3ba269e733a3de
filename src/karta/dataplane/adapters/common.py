"""What every consumer adapter shares: the call's stamp, the error of a failed unary call,
input text extraction and the framing of a stateless call's history. The fold of a turn's
events is `karta.core.turn_fold.TurnOutcome`; SSE framing is `karta.core.sse`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from karta.core.errors import KartaError


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


# The roles of the chat APIs' messages that can be shown to the agent as history.
HISTORY_ROLES = ("system", "developer", "user", "assistant", "tool", "function")
HISTORY_PREAMBLE = (
    "The earlier turns of this conversation, oldest first, as the client sent them. "
    "Continue the conversation: answer the message after this block."
)


def split_turns(messages: list[Any]) -> tuple[list[tuple[str, str]], str]:
    """A chat history as its earlier turns, `(role, text)` oldest first, and the text of the
    newest user message. Earlier turns are the messages before that one with a known role and
    some text; messages after it (an assistant prefill) are not sent."""
    newest = max(
        (i for i, m in enumerate(messages) if isinstance(m, dict) and m.get("role") == "user"),
        default=None,
    )
    if newest is None:
        return [], ""
    earlier = [
        (m["role"], input_text(m.get("content")))
        for m in messages[:newest]
        if isinstance(m, dict) and m.get("role") in HISTORY_ROLES
    ]
    return [(r, t) for r, t in earlier if t.strip()], input_text(messages[newest].get("content"))


def with_history(earlier: list[tuple[str, str]], text: str) -> str:
    """The first message of a session a stateless call opens: the earlier turns the client
    showed, in a `<conversation_history>` block (a preamble, then one `<message role="…">` per
    turn), a blank line, then the newest user message. Without earlier turns: the message."""
    if not earlier:
        return text
    turns = "".join(f'<message role="{role}">\n{body}\n</message>\n' for role, body in earlier)
    return f"<conversation_history>\n{HISTORY_PREAMBLE}\n{turns}</conversation_history>\n\n{text}"


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
