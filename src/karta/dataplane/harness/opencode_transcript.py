"""OpenCode's stored conversation (`GET /session/{id}/message`: `[{info, parts}]`, oldest first)
as Karta messages."""

from __future__ import annotations

from typing import Any

from karta.dataplane.harness.transcript import (
    Message,
    Part,
    iso_from_millis,
    message,
    reasoning_part,
    text_part,
    tool_part,
)


def messages_from(stored: Any) -> list[Message]:
    messages: list[Message] = []
    for item in stored if isinstance(stored, list) else []:
        info = item.get("info") if isinstance(item, dict) else None
        if not isinstance(info, dict) or info.get("role") not in ("user", "assistant"):
            continue
        parts = [part for raw in item.get("parts") or [] if (part := _part(raw))]
        if parts:  # an assistant message aborted before it said anything shows nothing
            created = (info.get("time") or {}).get("created")
            messages.append(
                message(str(info.get("id")), info["role"], parts, iso_from_millis(created))
            )
    return messages


def _part(raw: Any) -> Part | None:
    # Synthetic and ignored parts are OpenCode's own additions, not what anyone said.
    if not isinstance(raw, dict) or raw.get("synthetic") or raw.get("ignored"):
        return None
    kind = raw.get("type")
    if kind in ("text", "reasoning") and raw.get("text"):
        return (text_part if kind == "text" else reasoning_part)(str(raw["text"]))
    if kind == "tool":
        state = raw.get("state") or {}
        status = str(state.get("status") or "pending")
        tool_input = state.get("input")
        return tool_part(
            str(raw.get("callID") or raw.get("id")),
            str(raw.get("tool")),
            tool_input if isinstance(tool_input, dict) else {},
            state.get("output") if status == "completed" else state.get("error"),
            status,
        )
    return None  # step boundaries, snapshots, patches, …
