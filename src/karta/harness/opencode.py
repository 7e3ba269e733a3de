"""The OpenCode adapter: one `opencode serve` per live Karta session, driven over its HTTP API
and event stream (never a process per turn).

The server runs in the session's workspace with private HOME/XDG folders, fully offline: the
provider points at the endpoint Karta was given, model-catalogue and update fetches are off, the
plugin folder is pre-seeded so nothing is installed, and ripgrep comes from the `ripgrep` wheel.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

import karta
from karta.app import jsonc
from karta.app.loader import OPENCODE
from karta.events import Event, done_event
from karta.harness.base import (
    HarnessFailure,
    HarnessGone,
    SessionSpec,
    ToolRequest,
    TurnContext,
    Verdict,
)
from karta.harness.environment import as_session_owner, base_env, with_project_env
from karta.harness.opencode_events import OpenCodeEventMapper

log = logging.getLogger(__name__)

OPENCODE_VERSION = "1.18.33"
START_TIMEOUT = 60.0
DEFAULT_MODEL = "claude-sonnet-4-5"
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
_END = object()  # the event stream ended: the server is gone


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
            "karta": {
                "npm": npm,
                "options": {"baseURL": base, "apiKey": key},
                "models": {
                    model: {"tool_call": True, "limit": {"context": 200000, "output": 8192}}
                },
            }
        },
        "model": f"karta/{model}",
        "small_model": f"karta/{model}",
        "enabled_providers": ["karta"],
        "share": "disabled",
        "autoupdate": False,
    }


class OpenCodeSession:
    def __init__(
        self, spec: SessionSpec, process: asyncio.subprocess.Process, url: str, password: str
    ) -> None:
        self.agent = spec.agent
        self.harness_session_id = spec.harness_session_id
        self._spec = spec
        self._process = process
        # Sandboxed, the server listens in the sandbox's own network namespace: Karta reaches
        # it through a UNIX socket only the server can open. Either way it wants a password.
        socket = spec.sandbox.harness_socket if spec.sandbox is not None else None
        self._http = httpx.AsyncClient(
            base_url=url,
            timeout=30,
            params={"directory": str(spec.workspace)},
            auth=("opencode", password),
            transport=httpx.AsyncHTTPTransport(uds=str(socket)) if socket else None,
        )
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._listener: asyncio.Task[None] | None = None
        self._approvals: set[asyncio.Task[None]] = set()
        self._turn: TurnContext | None = None
        self._drain = asyncio.create_task(_drain(process))

    async def start(self) -> None:
        connected = asyncio.Event()
        self._listener = asyncio.create_task(self._listen(connected))
        waiter = asyncio.create_task(connected.wait())
        finished, _ = await asyncio.wait(
            {waiter, self._listener}, timeout=START_TIMEOUT, return_when=asyncio.FIRST_COMPLETED
        )
        if waiter not in finished:
            waiter.cancel()
            raise HarnessFailure("OpenCode's event stream did not connect")
        if self._spec.resume:
            found = await self._http.get(f"/session/{self.harness_session_id}")
            if found.status_code == 200:
                return
            log.warning("OpenCode session %s is gone; starting a new one", self.harness_session_id)
        created = await self._http.post("/session", json={})
        created.raise_for_status()
        self.harness_session_id = created.json()["id"]

    async def _listen(self, connected: asyncio.Event) -> None:
        try:
            async with self._http.stream("GET", "/event", timeout=None) as response:
                async for line in response.aiter_lines():
                    if not line.startswith("data: "):
                        continue
                    event = json.loads(line[6:])
                    kind, props = event.get("type", ""), event.get("properties") or {}
                    if kind == "server.connected":
                        connected.set()
                    elif props.get("sessionID") == self.harness_session_id:
                        if kind == "permission.asked":
                            self._ask(props)
                        else:
                            self._queue.put_nowait((kind, props))
        except (httpx.HTTPError, ValueError) as exc:
            log.info("OpenCode event stream ended: %s", exc)
        finally:
            self._queue.put_nowait(_END)

    def _ask(self, props: dict[str, Any]) -> None:
        async def decide() -> None:
            tool = props.get("permission", "tool")
            request = ToolRequest(
                tool,
                dict(props.get("metadata") or {}),
                (props.get("tool") or {}).get("callID"),
                {"patterns": props.get("patterns", [])},
            )
            turn = self._turn
            if turn is None:
                return  # asked outside a turn: nobody can answer; the next abort clears it
            answer = await turn.approvals(request)
            body: dict[str, Any] = {"reply": "once"}
            if answer.verdict is Verdict.DENY:
                # With a message OpenCode tells the model and continues the turn.
                body = {"reply": "reject", "message": answer.message or "The user denied this."}
            await self._http.post(f"/permission/{props['id']}/reply", json=body)

        task = asyncio.create_task(decide())
        self._approvals.add(task)
        task.add_done_callback(self._approvals.discard)

    async def turn(self, ctx: TurnContext) -> AsyncIterator[Event]:
        mapper = OpenCodeEventMapper(thinking=ctx.thinking)
        body: dict[str, Any] = {"parts": [{"type": "text", "text": ctx.text}]}
        if not self.agent.is_builtin:
            body["agent"] = self.agent.name  # OpenCode switches agents per message natively
        while not self._queue.empty():  # stragglers of the previous turn
            if self._queue.get_nowait() is _END:
                raise HarnessGone("the OpenCode server had stopped")
        self._turn = ctx
        try:
            try:
                sent = await self._http.post(
                    f"/session/{self.harness_session_id}/prompt_async", json=body
                )
            except httpx.TransportError as exc:
                raise HarnessGone(f"the OpenCode server is unreachable: {exc}") from exc
            if sent.is_error:
                raise HarnessFailure(
                    f"OpenCode refused the message: {sent.status_code} {sent.text}"
                )
            while True:
                item = await self._queue.get()
                if item is _END:
                    raise HarnessFailure(
                        f"the OpenCode server stopped (exit {self._process.returncode})"
                    )
                kind, props = item
                if kind == "session.idle":
                    break
                for event in mapper.map(kind, props):
                    yield event
        finally:
            self._turn = None
        if ctx.cancelled.is_set():
            status = "cancelled"
        else:
            status = "failed" if mapper.errors else "completed"
        yield done_event(mapper.usage(), status=status)

    async def interrupt(self) -> None:
        await self._http.post(f"/session/{self.harness_session_id}/abort")

    async def close(self) -> None:
        for task in (self._listener, self._drain, *self._approvals):
            if task is not None:
                task.cancel()
        if self._process.returncode is None:
            self._process.terminate()
            try:
                await asyncio.wait_for(self._process.wait(), 5)
            except TimeoutError:
                self._process.kill()
                await self._process.wait()
        await self._http.aclose()


class OpenCodeHarness:
    kind = OPENCODE

    def __init__(self, home: Path, *, binary: str | None = None) -> None:
        self.home = home
        self.binary = binary or find_binary()

    def available(self) -> bool:
        return Path(self.binary).is_file()

    def has_transcript(self, spec: SessionSpec) -> bool:
        """OpenCode names its sessions itself (`ses_…`); Karta stores that id after the first
        open, and OpenCode's database lives in the session's own state folder."""
        return spec.harness_session_id.startswith("ses_")

    def _env(self, spec: SessionSpec) -> dict[str, str]:
        state = spec.state_dir
        env = base_env(state)
        dirs = {name: state / name for name in ("data", "config", "cache", "state")}
        env.update({f"XDG_{name.upper()}_HOME": str(path) for name, path in dirs.items()})
        env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"  # ripgrep from the wheel
        env.update(OFFLINE)
        self._seed(dirs["config"] / "opencode")
        rg = shutil.which("rg", path=env["PATH"])
        cache_bin = dirs["cache"] / "opencode" / "bin"
        cache_bin.mkdir(parents=True, exist_ok=True)
        if rg and not (cache_bin / "rg").exists():
            (cache_bin / "rg").symlink_to(rg)
        config = provider_config(spec.model_env, spec.agent.model or DEFAULT_MODEL)
        config["permission"] = {"webfetch": "deny"}
        if not _app_sets_permissions(spec.workspace):
            config["permission"].update({"edit": "ask", "bash": "ask"})
        env["OPENCODE_CONFIG_CONTENT"] = json.dumps(config)
        return with_project_env(env, spec.project_env)

    def _owned_env(self, spec: SessionSpec) -> dict[str, str]:
        with as_session_owner(spec.sandbox):
            return self._env(spec)

    @staticmethod
    def _seed(config_dir: Path) -> None:
        """Make OpenCode believe its plugin package is installed, so it never runs npm."""
        (config_dir / "node_modules").mkdir(parents=True, exist_ok=True)
        deps = {"@opencode-ai/plugin": OPENCODE_VERSION}
        (config_dir / "package.json").write_text(json.dumps({"dependencies": deps}))
        lock = {"lockfileVersion": 3, "packages": {"": {"dependencies": deps}}}
        (config_dir / "package-lock.json").write_text(json.dumps(lock))

    async def transcript(self, spec: SessionSpec) -> list[dict[str, Any]]:
        return []  # read from the harness's own storage: see the transcript readers

    async def open(self, spec: SessionSpec) -> OpenCodeSession:
        env = await asyncio.to_thread(self._owned_env, spec)
        password = secrets.token_urlsafe(24)
        env["OPENCODE_SERVER_PASSWORD"] = password
        command, port = self.binary, 0
        if spec.sandbox is not None:
            rg = shutil.which("rg", path=env["PATH"])
            readonly = [Path(rg)] if rg else []
            launcher = spec.sandbox.launcher(self.binary, env, readonly=readonly)
            command, port = str(launcher), spec.sandbox.harness_port
        try:
            process = await asyncio.create_subprocess_exec(
                command,
                "serve",
                "--port",
                str(port),
                "--hostname",
                "127.0.0.1",
                cwd=spec.workspace,
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            raise HarnessFailure(f"cannot start OpenCode ({self.binary}): {exc}") from exc
        url = await _listening_url(process)
        session = OpenCodeSession(spec, process, url, password)
        try:
            await session.start()
        except Exception as exc:
            await session.close()
            raise HarnessFailure(f"OpenCode did not start a session: {exc}") from exc
        return session


def _app_sets_permissions(workspace: Path) -> bool:
    for name in ("opencode.jsonc", "opencode.json"):
        for path in (workspace / ".opencode" / name, workspace / name):
            if path.is_file():
                with contextlib.suppress(ValueError):
                    if "permission" in jsonc.loads(path.read_text()):
                        return True
    return False


async def _listening_url(process: asyncio.subprocess.Process) -> str:
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


async def _drain(process: asyncio.subprocess.Process) -> None:
    """Keep reading the server's output so its pipe never fills up."""
    assert process.stdout is not None
    while await process.stdout.readline():
        pass
