"""Usage read from the provider's own responses as they pass through the model proxy: the
Anthropic Messages stream (`message_start` carries input and cache tokens, `message_delta` the
running output count), OpenAI chat chunks (the last one carries `usage` when the request asked
for it) and plain JSON bodies of either."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from karta.core.events import usage_of


@dataclass
class CallUsage:
    wire: str
    model: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    provider: str | None = None  # who served it: anthropic, openai, openrouter, bedrock, vertex
    key_owner: str = "platform"  # whose key paid: the platform's, the org's or the project's

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "provider": self.provider,
            "key_owner": self.key_owner,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "cache_write_tokens": self.cache_write_tokens,
        }


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int | float) else 0


class UsageMeter:
    """Fed the response body chunk by chunk; never keeps more than one partial line."""

    def __init__(
        self,
        wire: str,
        requested_model: str | None,
        provider: str | None = None,
        key_owner: str = "platform",
    ) -> None:
        self.usage = CallUsage(wire, requested_model, provider=provider, key_owner=key_owner)
        self._partial = b""

    def feed(self, chunk: bytes) -> None:
        data = self._partial + chunk
        *lines, self._partial = data.split(b"\n")
        for line in lines:
            if line.startswith(b"data:"):
                self._event(line[5:].strip())

    def finish(self, content_type: str) -> CallUsage:
        rest, self._partial = self._partial, b""
        if "json" in content_type:
            self._event(rest)
        elif rest.startswith(b"data:"):
            self._event(rest[5:].strip())
        return self.usage

    def _event(self, raw: bytes) -> None:
        if not raw or raw == b"[DONE]" or b"usage" not in raw:
            return  # most chunks carry text only: skip the JSON parse
        try:
            event = json.loads(raw)
        except ValueError:
            return
        if isinstance(event, dict):
            self._apply(event)

    def _apply(self, event: dict[str, Any]) -> None:
        u = self.usage
        kind = event.get("type")
        if kind == "message_start":
            event = event.get("message") or {}
        usage = event.get("usage")
        if isinstance(event.get("model"), str):
            u.model = event["model"]
        if not isinstance(usage, dict):
            return
        if self.usage.wire == "openai":
            u.input_tokens = _int(usage.get("prompt_tokens"))
            u.output_tokens = _int(usage.get("completion_tokens"))
            details = usage.get("prompt_tokens_details") or {}
            u.cache_read_tokens = _int(details.get("cached_tokens"))
            return
        # Anthropic: message_delta repeats cumulative counts; take the latest non-zero ones.
        for field, key in (
            ("input_tokens", "input_tokens"),
            ("output_tokens", "output_tokens"),
            ("cache_read_tokens", "cache_read_input_tokens"),
            ("cache_write_tokens", "cache_creation_input_tokens"),
        ):
            if _int(usage.get(key)):
                setattr(u, field, _int(usage.get(key)))


def turn_usage(calls: list[CallUsage]) -> dict[str, Any]:
    """A turn's usage: the sum of its model calls, in Karta's shape (input counts cache reads
    and writes: they are input too). The model is the one that produced the most output."""
    cache_read = sum(c.cache_read_tokens for c in calls)
    cache_write = sum(c.cache_write_tokens for c in calls)
    inp = sum(c.input_tokens for c in calls) + cache_read + cache_write
    out = sum(c.output_tokens for c in calls)
    models: dict[str, int] = {}
    for call in calls:
        if call.model:
            models[call.model] = models.get(call.model, 0) + call.output_tokens
    model = max(models, key=lambda m: models[m]) if models else None
    return {**usage_of(inp, out, cache_read, cache_write), "model": model}
