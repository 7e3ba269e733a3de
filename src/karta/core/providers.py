"""Model providers an organization may bring its own key for (docs/byok.md), as both planes know
them: the credential fields each takes, which API a harness speaks to reach it (the *wire*:
Claude Code speaks Anthropic Messages, OpenCode apps Anthropic or OpenAI chat), and where each
provider's API lives (operator-configurable, so a test or a gateway can stand in for it)."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from typing import Literal

Provider = Literal["anthropic", "openai", "openrouter", "bedrock", "vertex"]
PROVIDERS: tuple[Provider, ...] = ("anthropic", "openai", "openrouter", "bedrock", "vertex")
KeyOwner = Literal["platform", "org", "project"]

# The credential each provider takes: required fields, then optional ones.
MATERIAL: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "anthropic": (("api_key",), ()),
    "openai": (("api_key",), ()),
    "openrouter": (("api_key",), ()),
    "bedrock": (("access_key_id", "secret_access_key", "region"), ("session_token",)),
    "vertex": (("service_account", "project", "region"), ()),
}
# Which providers serve each wire, the first being the wire's own (the platform's key, when
# the operator configured one, serves only that one).
SERVES: dict[str, tuple[Provider, ...]] = {
    "anthropic": ("anthropic", "openrouter", "bedrock", "vertex"),
    "openai": ("openai", "openrouter"),
}
# Providers whose endpoint an organization may replace with a compatible one of its own.
CUSTOM_ENDPOINT: tuple[Provider, ...] = ("anthropic", "openai")


def native(wire: str) -> Provider:
    return SERVES[wire][0]


@dataclass(frozen=True)
class ProviderURLs:
    """Base URLs (`{region}` is filled in per key). `KARTA_PROVIDER_<FIELD>_URL` overrides
    each, e.g. `KARTA_PROVIDER_BEDROCK_RUNTIME_URL`."""

    anthropic: str = "https://api.anthropic.com"
    openai: str = "https://api.openai.com/v1"
    openrouter: str = "https://openrouter.ai/api"
    bedrock: str = "https://bedrock.{region}.amazonaws.com"
    bedrock_runtime: str = "https://bedrock-runtime.{region}.amazonaws.com"
    vertex: str = "https://{region}-aiplatform.googleapis.com"
    vertex_token: str = "https://oauth2.googleapis.com/token"

    @classmethod
    def from_env(cls) -> ProviderURLs:
        found = {}
        for f in fields(cls):
            value = os.environ.get(f"KARTA_PROVIDER_{f.name.upper()}_URL")
            if value:
                found[f.name] = value.rstrip("/")
        return cls(**found)

    def at(self, name: str, region: str = "") -> str:
        return str(getattr(self, name)).replace("{region}", region).rstrip("/")


# What goes into a provider's URL from a key must be a plain name (a region or a GCP project
# cannot smuggle a host or a path in).
REGION_PATTERN = r"^[a-z0-9]+(-[a-z0-9]+){0,4}$"
GCP_PROJECT_PATTERN = r"^[a-z][a-z0-9-]{4,61}[a-z0-9]$"
