"""OpenAI Chat Completions wire formats (what OpenCode's OpenAI-compatible provider speaks):
requests normalised to Anthropic-shaped messages, replies as JSON or `data:` chunks."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from karta.testing.blocks import Reply

DEFAULT_USAGE = {"input_tokens": 10, "output_tokens": 5}


def _text_blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    return [
        {"type": "text", "text": part.get("text", "")}
        for part in content or []
        if isinstance(part, dict) and part.get("type") == "text"
    ]


def normalise(body: dict[str, Any]) -> dict[str, Any]:
    """A Chat Completions body as an Anthropic-shaped one: `system` text, and messages whose
    content is blocks (tool calls → `tool_use`, tool messages → `tool_result` in a user turn)."""
    system: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = []
    for message in body.get("messages") or []:
        role = message.get("role")
        if role in ("system", "developer"):
            system += _text_blocks(message.get("content"))
        elif role == "tool":
            block = {
                "type": "tool_result",
                "tool_use_id": message.get("tool_call_id"),
                "content": message.get("content") or "",
            }
            if (
                messages
                and messages[-1]["role"] == "user"
                and all(b["type"] == "tool_result" for b in messages[-1]["content"])
            ):
                messages[-1]["content"].append(block)
            else:
                messages.append({"role": "user", "content": [block]})
        elif role == "assistant":
            blocks = _text_blocks(message.get("content"))
            for call in message.get("tool_calls") or []:
                function = call.get("function") or {}
                try:
                    arguments = json.loads(function.get("arguments") or "{}")
                except ValueError:
                    arguments = {"_raw": function.get("arguments")}
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": call.get("id"),
                        "name": function.get("name"),
                        "input": arguments,
                    }
                )
            messages.append({"role": "assistant", "content": blocks})
        else:
            messages.append({"role": "user", "content": _text_blocks(message.get("content"))})
    return {**body, "system": system, "messages": messages}


def _finish_reason(reply: Reply) -> str:
    return "tool_calls" if reply.stop_reason == "tool_use" else "stop"


def _usage(reply: Reply) -> dict[str, int]:
    usage = reply.usage or DEFAULT_USAGE
    prompt, completion = usage.get("input_tokens", 0), usage.get("output_tokens", 0)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _tool_calls(reply: Reply) -> list[dict[str, Any]]:
    return [
        {
            "id": b["id"],
            "type": "function",
            "function": {"name": b["name"], "arguments": json.dumps(b.get("input", {}))},
        }
        for b in reply.blocks
        if b["type"] == "tool_use"
    ]


def message(reply: Reply, model: str) -> dict[str, Any]:
    text = "".join(b["text"] for b in reply.blocks if b["type"] == "text")
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    if calls := _tool_calls(reply):
        message["tool_calls"] = calls
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": _finish_reason(reply)}],
        "usage": _usage(reply),
    }


def error_body(reply: Reply) -> dict[str, Any]:
    return {"error": {"message": reply.message, "type": reply.error_type, "code": reply.status}}


async def stream(reply: Reply, model: str, chunk_size: int) -> AsyncIterator[bytes]:
    base = {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return f"data: {json.dumps({**base, 'choices': [choice]})}\n\n".encode()

    yield chunk({"role": "assistant", "content": ""})
    calls = 0
    for block in reply.blocks:
        if block["type"] == "text":
            body = block["text"]
            for offset in range(0, len(body), chunk_size):
                if offset and reply.chunk_delay:
                    await asyncio.sleep(reply.chunk_delay)
                yield chunk({"content": body[offset : offset + chunk_size]})
        elif block["type"] == "tool_use":
            arguments = json.dumps(block.get("input", {}))
            yield chunk(
                {
                    "tool_calls": [
                        {
                            "index": calls,
                            "id": block["id"],
                            "type": "function",
                            "function": {"name": block["name"], "arguments": ""},
                        }
                    ]
                }
            )
            for offset in range(0, len(arguments), chunk_size):
                yield chunk(
                    {
                        "tool_calls": [
                            {
                                "index": calls,
                                "function": {"arguments": arguments[offset : offset + chunk_size]},
                            }
                        ]
                    }
                )
            calls += 1
    yield chunk({}, _finish_reason(reply))
    yield f"data: {json.dumps({**base, 'choices': [], 'usage': _usage(reply)})}\n\n".encode()
    yield b"data: [DONE]\n\n"
