"""Agent definitions discovered from `.claude/agents/*.md` (YAML front matter + prompt body)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import frontmatter

from karta.core.errors import AppConfigError

DEFAULT_AGENT_NAME = "karta-default"


@dataclass(frozen=True)
class AgentDefinition:
    name: str
    description: str = ""
    prompt: str = ""
    model: str | None = None
    tools: tuple[str, ...] = ()
    type: str = "primary"
    path: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def is_builtin(self) -> bool:
        return self.name == DEFAULT_AGENT_NAME

    def public(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "model": self.model,
            "tools": list(self.tools),
            "type": self.type,
        }


BUILTIN_AGENT = AgentDefinition(
    name=DEFAULT_AGENT_NAME,
    description="The harness's own general-purpose agent, guided by the app's shared instructions.",
)


def _tools(value: Any) -> tuple[str, ...]:
    """Claude Code writes `tools: Read, Bash`; also accept a YAML list or a {tool: bool} map."""
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(t.strip() for t in value.split(",") if t.strip())
    if isinstance(value, list):
        return tuple(str(t) for t in value)
    if isinstance(value, dict):
        return tuple(str(k) for k, enabled in value.items() if enabled)
    raise ValueError("tools must be a comma-separated string, a list or a map")


def parse_agent_file(path: Path) -> AgentDefinition:
    try:
        post = frontmatter.load(str(path))
        meta = dict(post.metadata)
        name = str(meta.pop("name", None) or path.stem)
        model = meta.pop("model", None)
        if isinstance(model, str) and "/" in model:
            model = model.split("/", 1)[1]  # "anthropic/claude-…" → "claude-…"
        return AgentDefinition(
            name=name,
            description=str(meta.pop("description", "") or ""),
            prompt=post.content.strip(),
            model=str(model) if model and model != "inherit" else None,
            tools=_tools(meta.pop("tools", None)),
            type=str(meta.pop("type", "primary")),
            path=str(path),
            extra=meta,
        )
    except (ValueError, TypeError) as exc:
        raise AppConfigError(f"cannot parse agent file {path.name}: {exc}") from exc
    except Exception as exc:  # YAML errors come in several classes
        raise AppConfigError(f"cannot parse agent file {path.name}: {exc}") from exc


def discover_agents(agents_dir: Path) -> dict[str, AgentDefinition]:
    if not agents_dir.is_dir():
        return {}
    agents: dict[str, AgentDefinition] = {}
    for path in sorted(agents_dir.glob("*.md")):
        agent = parse_agent_file(path)
        if agent.name in agents:
            raise AppConfigError(f"two agent files define the agent {agent.name!r}")
        if agent.name == DEFAULT_AGENT_NAME:
            raise AppConfigError(f"the agent name {DEFAULT_AGENT_NAME!r} is reserved")
        agents[agent.name] = agent
    return agents


def resolve_default_agent(
    agents: dict[str, AgentDefinition], configured: str | None
) -> AgentDefinition:
    """No agents → the built-in one; one agent → it; several → `default_agent` must name one."""
    if configured is not None:
        if configured == DEFAULT_AGENT_NAME:
            return BUILTIN_AGENT
        if configured not in agents:
            raise AppConfigError(
                f"default_agent {configured!r} is not one of the app's agents",
                agents=sorted(agents),
            )
        return agents[configured]
    primaries = [a for a in agents.values() if a.type == "primary"]
    if not agents:
        return BUILTIN_AGENT
    if len(primaries) == 1:
        return primaries[0]
    raise AppConfigError(
        'the app defines several agents: name the entry point with "default_agent" in karta.jsonc',
        agents=sorted(agents),
    )
