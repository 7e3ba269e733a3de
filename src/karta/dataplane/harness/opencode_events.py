"""Translate `opencode serve` bus events into Karta events for one OpenCode session."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from karta.core import events as ev
from karta.core.events import Event

SOURCE = "opencode"


def usage_from(tokens: dict[str, Any] | None) -> dict[str, Any]:
    tokens = tokens or {}
    cache = tokens.get("cache") or {}
    read, write = int(cache.get("read") or 0), int(cache.get("write") or 0)
    inp = int(tokens.get("input") or 0) + read + write
    out = int(tokens.get("output") or 0) + int(tokens.get("reasoning") or 0)
    return {
        "input_tokens": inp,
        "output_tokens": out,
        "total_tokens": inp + out,
        "cache_read_tokens": read,
        "cache_write_tokens": write,
    }


@dataclass
class OpenCodeEventMapper:
    """Stateful per turn: text arrives as `message.part.delta`s; a completed part whose text is
    longer than what was streamed contributes the unseen rest, so nothing is lost or repeated."""

    thinking: bool = False
    _assistant: set[str] = field(default_factory=set)
    _streamed: dict[str, int] = field(default_factory=dict)
    _kinds: dict[str, str] = field(default_factory=dict)  # part id → text | reasoning
    _tool_status: dict[str, str] = field(default_factory=dict)
    _steps: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    _model: str | None = None

    def map(self, kind: str, props: dict[str, Any]) -> list[Event]:
        if kind == "message.updated":
            info = props.get("info") or {}
            if info.get("role") == "assistant":
                self._assistant.add(info.get("id", ""))
                self._model = info.get("modelID") or self._model
            return []
        if kind == "message.part.delta":
            return self._delta(props)
        if kind == "message.part.updated":
            return self._part(props.get("part") or {})
        if kind == "session.error":
            error = props.get("error") or {}
            message = (error.get("data") or {}).get("message") or error.get("name") or "error"
            self.errors.append(message)
            return [
                Event(
                    ev.ERROR, {"message": message, "code": "model_error", "details": error}, SOURCE
                )
            ]
        if kind == "session.status" and (props.get("status") or {}).get("type") == "retry":
            return [Event(ev.SYSTEM, {"subtype": "api_retry", **props["status"]}, SOURCE)]
        return []

    def _text_kind(self, part_type: str) -> str | None:
        if part_type == "text":
            return ev.TEXT
        if part_type == "reasoning" and self.thinking:
            return ev.REASONING
        return None

    def _chunk(self, kind: str, part_id: str, message_id: str, text: str) -> Event:
        self._streamed[part_id] = self._streamed.get(part_id, 0) + len(text)
        event = ev.text_event(part_id, text, kind=kind, source=SOURCE)
        event.data["part"]["messageID"] = message_id
        return event

    def _delta(self, props: dict[str, Any]) -> list[Event]:
        if props.get("field") != "text" or props.get("messageID") not in self._assistant:
            return []
        part_id = props.get("partID", "")
        kind = self._kinds.get(part_id, ev.TEXT)  # the part's first update names its type
        if kind == ev.REASONING and not self.thinking:
            return []
        return [self._chunk(kind, part_id, props["messageID"], props.get("delta", ""))]

    def _part(self, part: dict[str, Any]) -> list[Event]:
        message_id = part.get("messageID", "")
        if message_id not in self._assistant:
            return []
        part_id, part_type = part.get("id", ""), part.get("type", "")
        if part_type in ("text", "reasoning"):
            self._kinds[part_id] = ev.TEXT if part_type == "text" else ev.REASONING
            kind = self._text_kind(part_type)
            text = part.get("text") or ""
            seen = self._streamed.get(part_id, 0)
            if kind is None or len(text) <= seen:
                return []
            return [self._chunk(kind, part_id, message_id, text[seen:])]
        if part_type == "step-start":
            data = {"part": {"id": part_id, "type": "step-start", "messageID": message_id}}
            return [Event(ev.STEP_START, data, SOURCE)]
        if part_type == "step-finish":
            tokens = usage_from(part.get("tokens"))
            self._steps[part_id] = tokens
            data = {
                "part": {
                    "id": part_id,
                    "type": "step-finish",
                    "messageID": message_id,
                    "reason": part.get("reason"),
                    "tokens": tokens,
                    "cost": part.get("cost"),
                }
            }
            return [Event(ev.STEP_FINISH, data, SOURCE)]
        if part_type == "tool":
            return self._tool(part, message_id)
        return []

    def _tool(self, part: dict[str, Any], message_id: str) -> list[Event]:
        state = part.get("state") or {}
        status = state.get("status")
        call_id = part.get("callID") or part.get("id", "")
        if (
            status not in ("running", "completed", "error")
            or self._tool_status.get(call_id) == status
        ):
            return []
        if status == "running" and call_id in self._tool_status:
            return []
        self._tool_status[call_id] = status
        tool_input = state.get("input") or {}
        out_state: dict[str, Any] = {"status": status, "input": tool_input}
        if status != "running":
            out_state["output"] = (
                state.get("output") if status == "completed" else state.get("error")
            )
        data = {
            "part": {
                "id": call_id,
                "type": "tool",
                "tool": part.get("tool"),
                "callID": call_id,
                "messageID": message_id,
                "state": out_state,
            },
            "tool_name": part.get("tool"),
            "tool_input": tool_input,
            "tool_use_id": call_id,
        }
        return [Event(ev.TOOL_USE, data, SOURCE)]

    def usage(self) -> dict[str, Any]:
        if not self._steps:
            return ev.empty_usage()
        keys = (
            "input_tokens",
            "output_tokens",
            "total_tokens",
            "cache_read_tokens",
            "cache_write_tokens",
        )
        totals: dict[str, Any] = {k: sum(step[k] for step in self._steps.values()) for k in keys}
        return {**totals, "model": self._model}
