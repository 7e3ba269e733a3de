"""Anthropic Messages API wire formats: the whole-message JSON and its SSE stream."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

from karta.testing.blocks import Reply

DEFAULT_USAGE = {"input_tokens": 10, "output_tokens": 5}


def message(reply: Reply, model: str) -> dict[str, Any]:
    return {
        "id": f"msg_{uuid.uuid4().hex}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": reply.blocks,
        "stop_reason": reply.stop_reason,
        "stop_sequence": None,
        "usage": reply.usage or DEFAULT_USAGE,
    }


def error_body(reply: Reply) -> dict[str, Any]:
    return {"type": "error", "error": {"type": reply.error_type, "message": reply.message}}


def _frame(event: dict[str, Any]) -> bytes:
    return f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()


async def stream(reply: Reply, model: str, chunk_size: int) -> AsyncIterator[bytes]:
    msg = message(reply, model)
    usage = msg["usage"]
    start = {**msg, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}}
    yield _frame({"type": "message_start", "message": start})
    for index, block in enumerate(reply.blocks):
        kind = block["type"]
        if kind == "text":
            yield _frame(
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {"type": "text", "text": ""},
                }
            )
            body = block["text"]
            for offset in range(0, len(body), chunk_size):
                if offset and reply.chunk_delay:
                    await asyncio.sleep(reply.chunk_delay)
                yield _frame(
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "text_delta", "text": body[offset : offset + chunk_size]},
                    }
                )
        elif kind == "thinking":
            yield _frame(
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {"type": "thinking", "thinking": "", "signature": ""},
                }
            )
            yield _frame(
                {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {"type": "thinking_delta", "thinking": block["thinking"]},
                }
            )
            yield _frame(
                {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {"type": "signature_delta", "signature": block["signature"]},
                }
            )
        else:
            yield _frame(
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {**block, "input": {}},
                }
            )
            yield _frame(
                {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {
                        "type": "input_json_delta",
                        "partial_json": json.dumps(block.get("input", {})),
                    },
                }
            )
        yield _frame({"type": "content_block_stop", "index": index})
    yield _frame(
        {
            "type": "message_delta",
            "delta": {"stop_reason": reply.stop_reason, "stop_sequence": None},
            "usage": {"output_tokens": usage.get("output_tokens", 0)},
        }
    )
    yield _frame({"type": "message_stop"})
