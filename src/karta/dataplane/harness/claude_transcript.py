"""Claude Code's own transcript, `<config>/projects/<slug>/<session id>.jsonl`, as Karta messages.

The file is append-only JSON lines of many kinds; only `user` and `assistant` records are the
conversation (attachments, queue operations, API request shapes, cost state… are bookkeeping).
The CLI writes one `assistant` record per content block, so records of one API message are
merged back, and tool results arrive as `user` records that complete the tool part they answer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from karta.dataplane.harness.claude_events import tool_output
from karta.dataplane.harness.transcript import (
    Message,
    Part,
    iso_from_text,
    message,
    reasoning_part,
    text_part,
    tool_part,
)

_LEADING_REMINDERS = re.compile(r"\A(?:\s*<system-reminder>.*?</system-reminder>)+\s*", re.S)
# Records that are not the visible conversation: harness-injected context, subagent work, and
# the summary standing in for compacted messages (the messages themselves stay in the file).
_HIDDEN = ("isMeta", "isSidechain", "isCompactSummary")


def with_reminder(lines: list[str], text: str) -> str:
    """`text` after a `<system-reminder>` block: how Karta tells Claude Code something that is
    not the user's words (see `without_reminders`)."""
    return "<system-reminder>\n" + "\n".join(lines) + "\n</system-reminder>\n\n" + text


def without_reminders(text: str) -> str:
    return _LEADING_REMINDERS.sub("", text)


def read_transcript(path: Path) -> list[Message]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    conversation = _Conversation()
    for record in _records(text.splitlines()):
        conversation.add(record)
    return conversation.messages


def _records(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a torn line: the CLI was killed while writing it
        if isinstance(record, dict):
            yield record


def _blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, list):
        return [block for block in content if isinstance(block, dict)]
    return []


@dataclass
class _Conversation:
    messages: list[Message] = field(default_factory=list)
    _tools: dict[str, Part] = field(default_factory=dict)  # tool_use id → its part

    def add(self, record: dict[str, Any]) -> None:
        body = record.get("message")
        if not isinstance(body, dict) or any(record.get(flag) for flag in _HIDDEN):
            return
        if record.get("type") == "assistant":
            self._assistant(record, body)
        elif record.get("type") == "user":
            self._user(record, body)

    def _assistant(self, record: dict[str, Any], body: dict[str, Any]) -> None:
        parts = [part for block in _blocks(body.get("content")) if (part := self._part(block))]
        message_id = str(body.get("id") or record.get("uuid"))
        last = self.messages[-1] if self.messages else None
        if last is not None and last["role"] == "assistant" and last["id"] == message_id:
            last["parts"] += parts
        else:
            self._append(message_id, "assistant", parts, record)

    def _part(self, block: dict[str, Any]) -> Part | None:
        kind = block.get("type")
        if kind == "text" and block.get("text"):
            return text_part(str(block["text"]))
        if kind == "thinking" and block.get("thinking"):
            return reasoning_part(str(block["thinking"]))
        if kind == "tool_use":
            tool_input = block.get("input")
            part = tool_part(
                str(block.get("id")),
                str(block.get("name")),
                tool_input if isinstance(tool_input, dict) else {},
                None,
                "running",  # until its result arrives
            )
            self._tools[part["id"]] = part
            return part
        return None  # redacted thinking, server tools, …

    def _user(self, record: dict[str, Any], body: dict[str, Any]) -> None:
        parts: list[Part] = []
        for block in _blocks(body.get("content")):
            if block.get("type") == "tool_result":
                self._result(block)
            elif block.get("type") == "text":
                text = without_reminders(str(block.get("text") or ""))
                if text.strip():
                    parts.append(text_part(text))
        self._append(str(record.get("uuid")), "user", parts, record)

    def _result(self, block: dict[str, Any]) -> None:
        part = self._tools.get(str(block.get("tool_use_id")))
        if part is None:
            return  # its call is not in this transcript
        part["output"] = tool_output(block.get("content"))
        part["status"] = "error" if block.get("is_error") else "completed"

    def _append(self, id: str, role: str, parts: list[Part], record: dict[str, Any]) -> None:
        if parts:  # a tool result alone, or an emptied record, is no message of its own
            self.messages.append(message(id, role, parts, iso_from_text(record.get("timestamp"))))
