"""A harness application on disk: harness detection, agent discovery, karta.jsonc settings."""

from karta.app.agents import DEFAULT_AGENT_NAME, AgentDefinition
from karta.app.loader import HarnessApp, load_app

__all__ = ["DEFAULT_AGENT_NAME", "AgentDefinition", "HarnessApp", "load_app"]
