"""Load a harness application folder: which harness it targets, its agents and its settings."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from karta.app import jsonc
from karta.app.agents import AgentDefinition, discover_agents, resolve_default_agent
from karta.core.errors import AgentNotFound, AppConfigError

CLAUDE_CODE = "claude-code"
OPENCODE = "opencode"
HARNESS_KINDS = (CLAUDE_CODE, OPENCODE)
PERMISSION_MODES = ("interactive", "autonomous")


@dataclass(frozen=True)
class AppSettings:
    """The run-time knobs of `karta.jsonc` that Karta itself acts on."""

    default_agent: str | None = None
    permission_mode: str = "interactive"
    raw: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class HarnessApp:
    root: Path
    name: str
    harness: str
    agents: dict[str, AgentDefinition]
    default_agent: AgentDefinition
    settings: AppSettings
    skills: tuple[str, ...] = ()  # the harness loads them itself; Karta lists them

    def agent(self, name: str | None) -> AgentDefinition:
        if name is None or name == self.default_agent.name:
            return self.default_agent
        try:
            return self.agents[name]
        except KeyError:
            raise AgentNotFound(f"agent {name!r} not found", agents=sorted(self.agents)) from None

    def public_agents(self) -> list[dict[str, Any]]:
        listed = {a.name: a for a in (self.default_agent, *self.agents.values())}
        return [
            {**a.public(), "default": a.name == self.default_agent.name} for a in listed.values()
        ]


def _read_toml(root: Path) -> dict[str, Any]:
    path = root / "karta.toml"
    if not path.is_file():
        return {}
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise AppConfigError(f"karta.toml is not valid TOML: {exc}") from exc


def _read_settings(root: Path) -> AppSettings:
    path = root / "karta.jsonc"
    if not path.is_file():
        return AppSettings()
    try:
        raw = jsonc.loads(path.read_text())
    except ValueError as exc:
        raise AppConfigError(f"karta.jsonc is not valid JSONC: {exc}") from exc
    if not isinstance(raw, dict):
        raise AppConfigError("karta.jsonc must hold a JSON object")
    default_agent = raw.get("default_agent")
    if default_agent is not None and not isinstance(default_agent, str):
        raise AppConfigError("karta.jsonc: default_agent must be a string")
    mode = (raw.get("runtime") or {}).get("permission_mode", "interactive")
    if mode not in PERMISSION_MODES:
        raise AppConfigError(
            f"karta.jsonc: runtime.permission_mode must be one of {', '.join(PERMISSION_MODES)}"
        )
    return AppSettings(default_agent=default_agent, permission_mode=mode, raw=raw)


def detect_harness(root: Path, manifest: dict[str, Any]) -> str:
    """Explicit `[harness] type` wins; then Claude Code markers; then OpenCode markers."""
    declared = (manifest.get("harness") or {}).get("type")
    if declared is not None:
        if declared not in HARNESS_KINDS:
            raise AppConfigError(
                f"karta.toml: unknown harness type {declared!r}", supported=list(HARNESS_KINDS)
            )
        return str(declared)
    if (root / ".claude").is_dir() or (root / "CLAUDE.md").is_file():
        return CLAUDE_CODE
    if (root / ".opencode").is_dir() or (root / "AGENTS.md").is_file():
        return OPENCODE
    raise AppConfigError(
        f"{root} is not a harness app: it has no CLAUDE.md, .claude/ or .opencode/"
    )


def _opencode_default_agent(root: Path) -> str | None:
    """OpenCode names its entry agent in `.opencode/opencode.jsonc` (`default_agent`)."""
    for name in ("opencode.jsonc", "opencode.json"):
        path = root / ".opencode" / name
        if path.is_file():
            try:
                value = jsonc.loads(path.read_text()).get("default_agent")
            except (ValueError, AttributeError) as exc:
                raise AppConfigError(f".opencode/{name} is not a valid JSON object: {exc}") from exc
            return str(value) if value is not None else None
    return None


def load_app(path: str | Path, default_name: str | None = None) -> HarnessApp:
    """`default_name`: the app's name when `karta.toml` gives none (else the folder's name;
    a materialized release's folder is named by its digest)."""
    root = Path(path).expanduser().resolve()
    if not root.is_dir():
        raise AppConfigError(f"{root} is not a directory")
    manifest = _read_toml(root)
    harness = detect_harness(root, manifest)
    agents_dir = root / (".claude" if harness == CLAUDE_CODE else ".opencode") / "agents"
    agents = discover_agents(agents_dir)
    settings = _read_settings(root)
    configured = settings.default_agent
    if configured is None and harness == OPENCODE:
        configured = _opencode_default_agent(root)
    default = resolve_default_agent(agents, configured)
    name = str(manifest.get("name") or default_name or root.name)
    skills_dir = agents_dir.parent / "skills"
    skills = tuple(sorted(p.parent.name for p in skills_dir.glob("*/SKILL.md")))
    return HarnessApp(root, name, harness, agents, default, settings, skills)
