"""Where harnesses reach the model: the operator's Anthropic endpoint, or the built-in scripted
model when none is configured (so the quickstart works offline)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

MODEL_VARIABLES = (
    "ANTHROPIC_BASE_URL",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "OPENAI_BASE_URL",  # OpenCode apps only: an OpenAI-compatible endpoint
    "OPENAI_API_KEY",
)


@dataclass
class ModelEndpoint:
    env: dict[str, str]
    description: str
    builtin: Any = None  # the running ScriptedModel, when Karta started one

    def close(self) -> None:
        if self.builtin is not None:
            self.builtin.stop()


def resolve_model_endpoint(environ: dict[str, str] | None = None) -> ModelEndpoint:
    environ = dict(os.environ if environ is None else environ)
    configured = {k: environ[k] for k in MODEL_VARIABLES if environ.get(k)}
    if configured:
        where = (
            configured.get("ANTHROPIC_BASE_URL")
            or configured.get("OPENAI_BASE_URL")
            or "the provider's public API"
        )
        return ModelEndpoint(configured, f"{where} (from the environment)")
    from karta.testing.scripted_model import BUILTIN_MODEL_NAME, ScriptedModel

    model = ScriptedModel(model_name=BUILTIN_MODEL_NAME)
    url = model.start()
    return ModelEndpoint(
        {"ANTHROPIC_BASE_URL": url, "ANTHROPIC_API_KEY": "karta-builtin-scripted-model"},
        "the built-in scripted model (offline; it echoes your messages). "
        "Set ANTHROPIC_API_KEY (and optionally ANTHROPIC_BASE_URL) to use a real model",
        model,
    )
