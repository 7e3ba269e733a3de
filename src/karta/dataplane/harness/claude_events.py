"""Translate `claude-agent-sdk` messages into Karta events (a pure, stateful-per-turn mapping)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from claude_agent_sdk import (
    AssistantMessage,
    ResultMessage,
    StreamEvent,
    SystemMessage,
    TextBlock,
    ThinkingBlock,
    ToolResultBlock,
    ToolUseBlock,
    UserMessage,
)

from karta.core import events as ev
from karta.core.events import Event, usage_of

SOURCE = "claude"


def tool_output(content: Any) -> str:
    """A tool result's content (a string, or content blocks) as text."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    texts = [b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text"]
    return "\n".join(texts) if texts else json.dumps(content)


def usage_from(raw: dict[str, Any] | None) -> dict[str, Any]:
    """Anthropic usage → Karta usage. Input counts cache reads and writes: they are input too."""
    raw = raw or {}
    cache_read = int(raw.get("cache_read_input_tokens") or 0)
    cache_write = int(raw.get("cache_creation_input_tokens") or 0)
    inp = int(raw.get("input_tokens") or 0) + cache_read + cache_write
    return usage_of(inp, int(raw.get("output_tokens") or 0), cache_read, cache_write)


@dataclass
class ClaudeEventMapper:
    """Maps one turn's SDK messages to events. Text and reasoning come from stream deltas; whole
    blocks are used only for messages that were not streamed (the CLI's non-stream fallback)."""

    thinking: bool = False
    _message_id: str | None = None
    _step_usage: dict[str, Any] = field(default_factory=dict)
    _stop_reason: str | None = None
    _model: str | None = None
    _streamed: set[str] = field(default_factory=set)
    _tools: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    result: ResultMessage | None = None

    def map(self, message: Any) -> list[Event]:
        if isinstance(message, StreamEvent):
            return self._stream(message)
        if isinstance(message, AssistantMessage):
            return self._assistant(message)
        if isinstance(message, UserMessage):
            return self._user(message)
        if isinstance(message, ResultMessage):
            self.result = message
            return self._result(message)
        if isinstance(message, SystemMessage):
            return [self._system(message)]
        return []

    # --- raw API stream events ----------------------------------------------------------------

    def _stream(self, message: StreamEvent) -> list[Event]:
        raw = message.event
        kind = raw.get("type")
        extra = (
            {"parent_tool_use_id": message.parent_tool_use_id} if message.parent_tool_use_id else {}
        )
        if kind == "message_start":
            msg = raw.get("message") or {}
            self._message_id = msg.get("id") or message.uuid
            self._step_usage = dict(msg.get("usage") or {})
            self._stop_reason = None
            part = {
                "id": f"step-start-{self._message_id}",
                "type": "step-start",
                "messageID": self._message_id,
            }
            return [Event(ev.STEP_START, {"part": part, **extra}, SOURCE)]
        if kind == "content_block_delta":
            delta = raw.get("delta") or {}
            index = raw.get("index", 0)
            if delta.get("type") == "text_delta" and delta.get("text"):
                return [
                    self._chunk(ev.TEXT, f"part-{self._message_id}-{index}", delta["text"], extra)
                ]
            if delta.get("type") == "thinking_delta" and self.thinking and delta.get("thinking"):
                pid = f"part-reasoning-{self._message_id}-{index}"
                return [self._chunk(ev.REASONING, pid, delta["thinking"], extra)]
            return []
        if kind == "message_delta":
            self._stop_reason = (raw.get("delta") or {}).get("stop_reason")
            self._step_usage.update({k: v for k, v in (raw.get("usage") or {}).items() if v})
            return []
        if kind == "message_stop":
            part = {
                "id": f"step-finish-{self._message_id}",
                "type": "step-finish",
                "messageID": self._message_id,
                "reason": self._stop_reason,
                "tokens": usage_from(self._step_usage),
            }
            return [Event(ev.STEP_FINISH, {"part": part, **extra}, SOURCE)]
        return []

    def _chunk(self, kind: str, part_id: str, text: str, extra: dict[str, Any]) -> Event:
        self._streamed.add(self._message_id or "")
        event = ev.text_event(part_id, text, kind=kind, source=SOURCE)
        event.data["part"]["messageID"] = self._message_id
        event.data.update(extra)
        return event

    # --- whole messages -----------------------------------------------------------------------

    def _assistant(self, message: AssistantMessage) -> list[Event]:
        out: list[Event] = []
        self._model = message.model or self._model
        mid = message.message_id or self._message_id
        streamed = mid in self._streamed
        extra = (
            {"parent_tool_use_id": message.parent_tool_use_id} if message.parent_tool_use_id else {}
        )
        if message.error:
            text = " ".join(b.text for b in message.content if isinstance(b, TextBlock))
            return [
                Event(
                    ev.ERROR,
                    {
                        "message": text or str(message.error),
                        "code": "model_error",
                        "details": str(message.error),
                    },
                    SOURCE,
                )
            ]
        for index, block in enumerate(message.content):
            if isinstance(block, TextBlock) and not streamed and block.text:
                out.append(self._chunk(ev.TEXT, f"part-{mid}-block{index}", block.text, extra))
            elif isinstance(block, ThinkingBlock) and not streamed and self.thinking:
                pid = f"part-reasoning-{mid}-block{index}"
                out.append(self._chunk(ev.REASONING, pid, block.thinking, extra))
            elif isinstance(block, ToolUseBlock):
                self._tools[block.id] = (block.name, block.input)
                out.append(self._tool_event(block.id, "running", extra))
        return out

    def _user(self, message: UserMessage) -> list[Event]:
        if isinstance(message.content, str):
            return []
        extra = (
            {"parent_tool_use_id": message.parent_tool_use_id} if message.parent_tool_use_id else {}
        )
        out: list[Event] = []
        for block in message.content:
            if isinstance(block, ToolResultBlock):
                status = "error" if block.is_error else "completed"
                out.append(
                    self._tool_event(
                        block.tool_use_id, status, extra, output=tool_output(block.content)
                    )
                )
        return out

    def _tool_event(
        self, tool_use_id: str, status: str, extra: dict[str, Any], output: str | None = None
    ) -> Event:
        name, tool_input = self._tools.get(tool_use_id, ("unknown", {}))
        state: dict[str, Any] = {"status": status, "input": tool_input}
        if output is not None:
            state["output"] = output
        part = {
            "id": tool_use_id,
            "type": "tool",
            "tool": name,
            "callID": tool_use_id,
            "messageID": self._message_id,
            "state": state,
        }
        data = {
            "part": part,
            "tool_name": name,
            "tool_input": tool_input,
            "tool_use_id": tool_use_id,
            **extra,
        }
        return Event(ev.TOOL_USE, data, SOURCE)

    def _result(self, message: ResultMessage) -> list[Event]:
        if not message.is_error:
            return []
        errors = getattr(message, "errors", None)
        return [
            Event(
                ev.ERROR,
                {
                    "message": message.result or "the harness reported an error",
                    "code": "harness_error",
                    "subtype": message.subtype,
                    "details": errors,
                },
                SOURCE,
            )
        ]

    def _system(self, message: SystemMessage) -> Event:
        data = message.data or {}
        if isinstance(data.get("model"), str):
            self._model = data["model"]
        keep: dict[str, Any] = {
            k: data[k]
            for k in (
                "model",
                "tools",
                "agents",
                "skills",
                "slash_commands",
                "permissionMode",
                "status",
            )
            if k in data
        }
        return Event(ev.SYSTEM, {"subtype": message.subtype, **keep}, SOURCE)

    def usage(self) -> dict[str, Any]:
        if self.result is not None and self.result.usage:
            return {**usage_from(self.result.usage), "model": self._model}
        return ev.empty_usage()
