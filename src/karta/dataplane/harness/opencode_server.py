"""Starting an `opencode serve`: where the binary is, its provider settings for the endpoint
Karta was given, a fully offline environment (no model-catalogue or update fetches, the plugin
folder pre-seeded so nothing is installed, ripgrep from the `ripgrep` wheel), and the URL it
listens on."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import karta
from karta.app import jsonc
from karta.dataplane.harness.base import HarnessFailure, SessionSpec
from karta.dataplane.harness.environment import as_session_owner, base_env, with_project_env

OPENCODE_VERSION = "1.18.33"
START_TIMEOUT = 60.0
DEFAULT_MODEL = "claude-sonnet-4-5"
PROVIDER = "karta"  # the one provider OpenCode is given: the endpoint Karta was given
REPO_BINARY = (
    Path(karta.__file__).resolve().parents[2]
    / "node_modules"
    / "opencode-linux-x64"
    / "bin"
    / "opencode"
)
OFFLINE = {
    "OPENCODE_DISABLE_MODELS_FETCH": "1",
    "OPENCODE_DISABLE_AUTOUPDATE": "1",
    "OPENCODE_DISABLE_LSP_DOWNLOAD": "1",
    "OPENCODE_DISABLE_DEFAULT_PLUGINS": "1",
    "OPENCODE_DISABLE_SHARE": "1",
    "OPENCODE_DISABLE_CLAUDE_CODE": "1",
    "OPENCODE_DISABLE_EXTERNAL_SKILLS": "1",
}


def find_binary() -> str:
    configured = os.environ.get("KARTA_OPENCODE_BIN")
    if configured:
        return configured
    if REPO_BINARY.is_file():
        return str(REPO_BINARY)
    return shutil.which("opencode") or str(REPO_BINARY)


def provider_config(model_env: dict[str, str], model: str) -> dict[str, Any]:
    """OpenCode provider settings for the endpoint Karta was given (Anthropic or OpenAI)."""
    if "OPENAI_BASE_URL" in model_env or "OPENAI_API_KEY" in model_env:
        npm, base = "@ai-sdk/openai-compatible", model_env.get("OPENAI_BASE_URL")
        key = model_env.get("OPENAI_API_KEY", "")
        base = base or "https://api.openai.com/v1"
    else:
        npm, key = "@ai-sdk/anthropic", model_env.get("ANTHROPIC_API_KEY", "")
        base = model_env.get("ANTHROPIC_BASE_URL", "https://api.anthropic.com").rstrip("/") + "/v1"
    return {
        "provider": {
            PROVIDER: {
                "npm": npm,
                "options": {"baseURL": base, "apiKey": key},
                "models": {
                    model: {"tool_call": True, "limit": {"context": 200000, "output": 8192}}
                },
            }
        },
        "model": f"{PROVIDER}/{model}",
        "small_model": f"{PROVIDER}/{model}",
        "enabled_providers": [PROVIDER],
        "share": "disabled",
        "autoupdate": False,
    }


def model_of(spec: SessionSpec) -> str:
    return spec.agent.model or DEFAULT_MODEL


def _env(spec: SessionSpec) -> dict[str, str]:
    state = spec.state_dir
    env = base_env(state)
    dirs = {name: state / name for name in ("data", "config", "cache", "state")}
    env.update({f"XDG_{name.upper()}_HOME": str(path) for name, path in dirs.items()})
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"  # ripgrep from the wheel
    env.update(OFFLINE)
    _seed(dirs["config"] / "opencode")
    project = spec.workspace / ".opencode"
    if project.is_dir() and not (project / "package.json").exists():
        _seed(project)  # the app's own config folder, unless it declares packages itself
    rg = shutil.which("rg", path=env["PATH"])
    cache_bin = dirs["cache"] / "opencode" / "bin"
    cache_bin.mkdir(parents=True, exist_ok=True)
    if rg and not (cache_bin / "rg").exists():
        (cache_bin / "rg").symlink_to(rg)
    config = provider_config(spec.model_env, model_of(spec))
    config["permission"] = {"webfetch": "deny"}
    if not _app_sets_permissions(spec.workspace):
        config["permission"].update({"edit": "ask", "bash": "ask"})
    env["OPENCODE_CONFIG_CONTENT"] = json.dumps(config)
    return with_project_env(env, spec.project_env)


def server_env(spec: SessionSpec) -> dict[str, str]:
    """The server's environment, its folders prepared as the session's owner."""
    with as_session_owner(spec.sandbox):
        return _env(spec)


def _seed(config_dir: Path) -> None:
    """Make OpenCode believe its plugin package is installed in a config folder, so it never
    runs npm there (on each config folder it would otherwise install `@opencode-ai/plugin`
    from the registry, in the background, at its first prompt)."""
    (config_dir / "node_modules").mkdir(parents=True, exist_ok=True)
    deps = {"@opencode-ai/plugin": OPENCODE_VERSION}
    (config_dir / "package.json").write_text(json.dumps({"dependencies": deps}))
    lock = {"lockfileVersion": 3, "packages": {"": {"dependencies": deps}}}
    (config_dir / "package-lock.json").write_text(json.dumps(lock))


def _app_sets_permissions(workspace: Path) -> bool:
    for name in ("opencode.jsonc", "opencode.json"):
        for path in (workspace / ".opencode" / name, workspace / name):
            if path.is_file():
                with contextlib.suppress(ValueError):
                    if "permission" in jsonc.loads(path.read_text()):
                        return True
    return False


async def listening_url(process: asyncio.subprocess.Process) -> str:
    """OpenCode prints `… listening on http://HOST:PORT`; requests before that can hang."""
    assert process.stdout is not None
    seen: list[str] = []

    async def read() -> str:
        assert process.stdout is not None
        while line := (await process.stdout.readline()).decode(errors="replace"):
            seen.append(line.rstrip())
            if "listening on " in line:
                return line.strip().rsplit("listening on ", 1)[1]
        raise HarnessFailure("OpenCode exited before listening:\n" + "\n".join(seen[-20:]))

    try:
        url = await asyncio.wait_for(read(), START_TIMEOUT)
    except TimeoutError as exc:
        process.kill()
        raise HarnessFailure("OpenCode did not start listening in time") from exc

    return url


async def drain(process: asyncio.subprocess.Process) -> None:
    """Keep reading the server's output so its pipe never fills up."""
    assert process.stdout is not None
    while await process.stdout.readline():
        pass
