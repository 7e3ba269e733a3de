"""The conversation shape every `Harness.transcript` returns (see `base.Harness.transcript`):
messages oldest first, each a list of text, reasoning and tool parts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

Message = dict[str, Any]
Part = dict[str, Any]


def message(id: str, role: str, parts: list[Part], created_at: str | None) -> Message:
    return {"id": id, "role": role, "parts": parts, "created_at": created_at}


def text_part(text: str) -> Part:
    return {"type": "text", "text": text}


def reasoning_part(text: str) -> Part:
    return {"type": "reasoning", "text": text}


def tool_part(id: str, tool: str, input: dict[str, Any], output: str | None, status: str) -> Part:
    return {
        "type": "tool",
        "id": id,
        "tool": tool,
        "input": input,
        "output": output,
        "status": status,
    }


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def iso_from_text(value: Any) -> str | None:
    """An ISO-8601 timestamp as the harness wrote it, in Karta's one form (UTC, milliseconds)."""
    if not isinstance(value, str):
        return None
    try:
        return _iso(datetime.fromisoformat(value))
    except ValueError:
        return None


def iso_from_millis(value: Any) -> str | None:
    """Milliseconds since the epoch (OpenCode's clock) in Karta's one form."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    try:
        return _iso(datetime.fromtimestamp(value / 1000, UTC))
    except (OverflowError, OSError, ValueError):
        return None
