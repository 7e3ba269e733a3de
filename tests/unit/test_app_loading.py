"""Harness detection, agent discovery, default-agent rules and karta.jsonc."""

from pathlib import Path

import pytest

from karta.app import DEFAULT_AGENT_NAME, load_app
from karta.app.jsonc import loads
from karta.core.errors import AgentNotFound, AppConfigError

ROOT = Path(__file__).resolve().parents[2]


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def agent(name: str, body: str = "Be helpful.", **meta: str) -> str:
    lines = [f"{k}: {v}" for k, v in {"name": name, **meta}.items()]
    return "---\n" + "\n".join(lines) + f"\n---\n{body}\n"


def test_jsonc_strips_comments_and_trailing_commas_but_not_strings():
    text = '{\n // c\n "a": "http://x//y", /* b */ "b": [1, 2,],\n "c": "/* kept */",\n}'
    assert loads(text) == {"a": "http://x//y", "b": [1, 2], "c": "/* kept */"}


def test_support_bot_example_loads_with_its_default_agent():
    app = load_app(ROOT / "examples" / "support-bot")
    assert app.harness == "claude-code" and app.name == "support-bot"
    assert app.default_agent.name == "triage"
    assert set(app.agents) == {"triage", "billing"}
    assert app.agents["triage"].tools == ("Read", "Write", "Glob")
    assert "first point of contact" in app.agents["triage"].prompt


def test_claude_md_only_app_gets_the_builtin_agent(tmp_path):
    write(tmp_path / "CLAUDE.md", "rules")
    app = load_app(tmp_path)
    assert app.default_agent.name == DEFAULT_AGENT_NAME
    assert app.agent(None).is_builtin


def test_a_single_agent_is_the_default(tmp_path):
    write(tmp_path / ".claude" / "agents" / "solo.md", agent("solo", model="anthropic/claude-x"))
    app = load_app(tmp_path)
    assert app.default_agent.name == "solo" and app.default_agent.model == "claude-x"


def test_several_agents_need_a_named_default(tmp_path):
    write(tmp_path / ".claude" / "agents" / "a.md", agent("a"))
    write(tmp_path / ".claude" / "agents" / "b.md", agent("b"))
    with pytest.raises(AppConfigError, match="default_agent"):
        load_app(tmp_path)
    write(tmp_path / "karta.jsonc", '{"default_agent": "b",}')
    assert load_app(tmp_path).default_agent.name == "b"
    write(tmp_path / "karta.jsonc", '{"default_agent": "zzz"}')
    with pytest.raises(AppConfigError, match="zzz"):
        load_app(tmp_path)


def test_unknown_agent_lookup_is_a_404_error(tmp_path):
    write(tmp_path / ".claude" / "agents" / "a.md", agent("a"))
    with pytest.raises(AgentNotFound):
        load_app(tmp_path).agent("nope")


@pytest.mark.parametrize(
    "files,message",
    [
        ({}, "not a harness app"),
        ({"CLAUDE.md": "x", "karta.toml": "name = ["}, "karta.toml"),
        ({"CLAUDE.md": "x", "karta.jsonc": "{nope"}, "karta.jsonc"),
        (
            {"CLAUDE.md": "x", "karta.jsonc": '{"runtime": {"permission_mode": "yolo"}}'},
            "permission_mode",
        ),
        ({".claude/agents/bad.md": "---\nname: [unclosed\n---\nbody"}, "bad.md"),
        ({"karta.toml": '[harness]\ntype = "emacs"'}, "unknown harness"),
    ],
)
def test_broken_apps_fail_with_a_clear_message(tmp_path, files, message):
    for name, text in files.items():
        write(tmp_path / name, text)
    with pytest.raises(AppConfigError, match=message):
        load_app(tmp_path)


def test_opencode_markers_and_explicit_harness_type(tmp_path):
    write(tmp_path / ".opencode" / "agents" / "x.md", agent("x"))
    assert load_app(tmp_path).harness == "opencode"
    write(tmp_path / "CLAUDE.md", "x")
    assert load_app(tmp_path).harness == "claude-code"
    write(tmp_path / "karta.toml", '[harness]\ntype = "opencode"')
    assert load_app(tmp_path).harness == "opencode"


def test_opencode_default_agent_and_skills_are_discovered(tmp_path):
    write(tmp_path / "AGENTS.md", "rules")
    write(tmp_path / ".opencode" / "agents" / "a.md", agent("a"))
    write(tmp_path / ".opencode" / "agents" / "b.md", agent("b"))
    write(tmp_path / ".opencode" / "opencode.jsonc", '{"default_agent": "b", // entry\n}')
    write(tmp_path / ".opencode" / "skills" / "lookup" / "SKILL.md", "---\nname: lookup\n---\n")
    app = load_app(tmp_path)
    assert app.harness == "opencode" and app.default_agent.name == "b"
    assert app.skills == ("lookup",)
