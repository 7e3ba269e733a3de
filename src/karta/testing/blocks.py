"""Content blocks and replies for the scripted model."""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

_tool_ids = itertools.count(1)
_REMINDERS = re.compile(r"^(\s*<system-reminder>.*?</system-reminder>)+", re.S)


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def thinking(value: str) -> dict[str, Any]:
    return {"type": "thinking", "thinking": value, "signature": "scripted-signature"}


def tool_use(name: str, input: dict[str, Any], id: str | None = None) -> dict[str, Any]:
    return {
        "type": "tool_use",
        "id": id or f"toolu_scripted_{next(_tool_ids):06d}",
        "name": name,
        "input": input,
    }


@dataclass
class Reply:
    """One model response: content blocks, or an injected HTTP error when `status` is set."""

    blocks: list[dict[str, Any]] = field(default_factory=list)
    delay: float = 0.0
    chunk_delay: float = 0.0
    usage: dict[str, int] | None = None
    status: int | None = None
    error_type: str = "api_error"
    message: str = ""

    @property
    def stop_reason(self) -> str:
        return "tool_use" if any(b["type"] == "tool_use" for b in self.blocks) else "end_turn"


def error_reply(status: int, message: str, type: str = "api_error") -> Reply:
    return Reply(status=status, error_type=type, message=message)


def _text_of(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    out = []
    for block in content or []:
        if isinstance(block, dict):
            if block.get("type") == "text":
                out.append(block.get("text", ""))
            elif block.get("type") == "tool_result":
                out.extend(_text_of(block.get("content")))
    return out


@dataclass(frozen=True)
class ModelRequest:
    """One request the harness sent, with the views tests assert on."""

    body: dict[str, Any]
    headers: dict[str, str]
    path: str
    wire: str = "anthropic"  # or "openai" (Chat Completions)

    @cached_property
    def conversation(self) -> dict[str, Any]:
        """The body in Anthropic shape, whichever API the request came through."""
        if self.wire == "openai":
            from karta.testing.openai_wire import normalise

            return normalise(self.body)
        return self.body

    @property
    def session_id(self) -> str | None:
        """Claude Code's `X-Claude-Code-Session-Id`, or OpenCode's `x-session-id`."""
        return self.headers.get("x-claude-code-session-id") or self.headers.get("x-session-id")

    @property
    def _last_user(self) -> list[dict[str, Any]]:
        for message in reversed(self.conversation.get("messages") or []):
            if message.get("role") == "user":
                content = message.get("content")
                return [text(content)] if isinstance(content, str) else list(content or [])
            if message.get("role") == "assistant":
                return []
        return []

    @property
    def kind(self) -> str:
        """`prompt`, `tool_result`, `task_notification`, `compaction` or `title` (OpenCode's
        session-title request)."""
        if "title generator" in " ".join(_text_of(self.conversation.get("system"))):
            return "title"
        blocks = self._last_user
        texts = [b.get("text", "") for b in blocks if b.get("type") == "text"]
        if any(b.get("type") == "tool_result" for b in blocks):
            return "tool_result"
        if any("<task-notification>" in t for t in texts):
            return "task_notification"
        if any(t.startswith("CRITICAL: Respond with TEXT ONLY") for t in texts):
            return "compaction"
        return "prompt"

    @property
    def prompt(self) -> str:
        """The user's own words: the last text block, without leading system reminders."""
        for block in reversed(self._last_user):
            value = block.get("text", "") if block.get("type") == "text" else ""
            value = _REMINDERS.sub("", value).strip()
            if value:
                return value
        return ""

    @property
    def tool_results(self) -> list[dict[str, Any]]:
        return [
            {
                "tool_use_id": b.get("tool_use_id"),
                "content": "\n".join(_text_of(b.get("content"))),
                "is_error": bool(b.get("is_error")),
            }
            for b in self._last_user
            if b.get("type") == "tool_result"
        ]

    @property
    def transcript_text(self) -> str:
        parts = _text_of(self.conversation.get("system"))
        for message in self.conversation.get("messages") or []:
            parts.extend(_text_of(message.get("content")))
            for block in message.get("content") or []:
                if isinstance(block, dict) and block.get("type") == "tool_use":
                    parts.append(json.dumps(block.get("input")))
        return "\n".join(parts)
