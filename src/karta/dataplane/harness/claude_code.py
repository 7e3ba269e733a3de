"""The Claude Code adapter, built on `claude-agent-sdk` (whose wheel bundles the `claude` CLI).

One connected `ClaudeSDKClient` per live Karta session keeps turns warm; a fresh client resumes
the conversation from Claude Code's own transcript (`resume=`) after eviction or a restart.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import deque
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import claude_agent_sdk
from claude_agent_sdk import (
    ClaudeAgentOptions,
    ClaudeSDKClient,
    PermissionResultAllow,
    PermissionResultDeny,
    ToolPermissionContext,
)
from claude_agent_sdk import project_key_for_directory as transcript_slug

from karta.app import AgentDefinition
from karta.app.loader import CLAUDE_CODE
from karta.core import events as ev
from karta.core.env_names import SDK_VARIABLES
from karta.core.events import Event, done_event
from karta.dataplane.harness.base import (
    ApprovalAnswer,
    HarnessFailure,
    HarnessGone,
    SessionSpec,
    ToolRequest,
    TurnContext,
    Verdict,
)
from karta.dataplane.harness.claude_events import ClaudeEventMapper
from karta.dataplane.harness.claude_transcript import read_transcript, with_reminder
from karta.dataplane.harness.environment import (
    as_session_owner,
    base_env,
    session_dirs,
    with_project_env,
    write_launcher,
)
from karta.dataplane.harness.processes import kill_tree
from karta.dataplane.harness.transcript import Message
from karta.dataplane.harness.turns import NOBODY_WAITS, RunningTurn

log = logging.getLogger(__name__)

BUNDLED_CLI = Path(claude_agent_sdk.__file__).parent / "_bundled" / "claude"
# The SDK's own close waits 5 s for the CLI to exit after EOF, then terminates it (5 s more),
# then kills it: a shorter timeout here cancels that escalation and orphans a busy process.
# `close(force=True)` skips the wait by killing the process tree first.
CLOSE_TIMEOUT = 20.0
# How long priming a pooled process may take (it answers in tens of milliseconds).
PRIME_TIMEOUT = 10.0


class ClaudeCodeSession:
    def __init__(self, spec: SessionSpec, harness: ClaudeCodeHarness) -> None:
        self.agent: AgentDefinition = spec.agent
        self.harness_session_id = spec.harness_session_id
        self.stderr_tail: deque[str] = deque(maxlen=40)
        self._running: RunningTurn | None = None
        self._client = ClaudeSDKClient(harness.options(spec, self))
        # Claude Code keeps the system prompt a conversation started with, even on resume.
        self._prompt_is_current = not spec.resume

    async def ask(self, request: ToolRequest) -> ApprovalAnswer:
        """A permission request, decided by the turn it arrives in. The SDK runs each in a task
        of its own, which it cancels when the CLI gives up on the request (an interrupt)."""
        running = self._running
        return NOBODY_WAITS if running is None else await running.decide(request)

    async def connect(self) -> None:
        try:
            await self._client.connect()
        except Exception as exc:
            raise HarnessFailure(f"Claude Code did not start: {exc}") from exc

    async def prime(self) -> None:
        """Have Claude Code do ahead what it does lazily on its first message: asking for the
        context's size and the MCP servers' state makes it build its system prompt, its tool
        list and its MCP connections, which the first turn then finds ready (no model call,
        nothing written to the conversation). A failure here is the first turn's to report."""
        try:
            async with asyncio.timeout(PRIME_TIMEOUT):
                await self._client.get_context_usage()
                await self._client.get_mcp_status()
        except Exception as exc:
            log.info("priming Claude Code failed: %r", exc)

    def _with_agent_instructions(self, text: str, handoff: bool) -> str:
        """After a handoff the new agent's instructions travel in the conversation: Claude Code
        pins a conversation's system prompt when it starts, so they cannot go there."""
        fresh, self._prompt_is_current = self._prompt_is_current, False
        if not handoff or fresh:
            return text
        agent = self.agent
        lines = [f'From now on you act as the "{agent.name}" agent.']
        if agent.description:
            lines.append(agent.description)
        if agent.prompt:
            lines += ["Follow these instructions until told otherwise:", agent.prompt]
        return with_reminder(lines, text)

    async def turn(self, ctx: TurnContext) -> AsyncIterator[Event]:
        mapper = ClaudeEventMapper(thinking=ctx.thinking)
        prompt = self._with_agent_instructions(ctx.text, ctx.handoff)
        running = self._running = RunningTurn(ctx)
        try:
            try:
                await self._client.query(prompt)
            except Exception as exc:
                raise HarnessGone(self._describe(exc)) from exc
            try:
                if running.message_sent():
                    await self._client.interrupt()
                async for message in self._client.receive_response():
                    for event in mapper.map(message):
                        # A stopped turn ends `cancelled`; the CLI's "error during execution"
                        # result is that interrupt, not a failure to report.
                        if not (running.stopping and event.type == ev.ERROR):
                            yield event
            except Exception as exc:
                if mapper.result is None:
                    raise HarnessFailure(self._describe(exc)) from exc
                log.debug("claude raised after its result: %s", exc)
        finally:
            self._running = None
            await running.end()
        if mapper.result is None:
            raise HarnessFailure(self._describe(None))
        if running.stopping:
            status = "cancelled"
        else:
            status = "failed" if mapper.result.is_error else "completed"
        yield done_event(mapper.usage(), status=status)

    async def interrupt(self) -> None:
        running = self._running
        if running is not None and running.stop_now():
            await self._client.interrupt()

    def _describe(self, exc: BaseException | None) -> str:
        reason = f"{type(exc).__name__}: {exc}" if exc else "the harness stopped mid-turn"
        tail = "\n".join(self.stderr_tail)
        return f"{reason}\n{tail}".strip()

    async def close(self, *, force: bool = False) -> None:
        if force:
            self._kill()  # the disconnect below then finds the process gone and returns at once
        try:
            await asyncio.wait_for(self._client.disconnect(), CLOSE_TIMEOUT)
        except Exception as exc:  # a dead or stuck process must not block eviction
            log.warning("closing a Claude Code session failed: %s", exc)

    def _kill(self) -> None:
        """SIGKILL the CLI and the tools it runs. The SDK has no public handle on its process;
        it keeps it at `_transport._process` in the exact SDK version pinned in
        pyproject.toml. Should that move, the close degrades to the SDK's graceful one."""
        transport = getattr(self._client, "_transport", None)
        if transport is None:
            return  # not connected, or closed already
        process = getattr(transport, "_process", None)
        if process is None or not isinstance(getattr(process, "pid", None), int):
            log.warning("cannot find Claude Code's process to kill; closing it gracefully")
        elif process.returncode is None:  # a reaped process's pid may be someone else's now
            kill_tree(process.pid)


class ClaudeCodeHarness:
    kind = CLAUDE_CODE

    def __init__(self, home: Path, *, binary: str | None = None, max_retries: int | None = None):
        self.home = home
        self.binary = binary or str(BUNDLED_CLI)
        self.max_retries = max_retries

    def available(self) -> bool:
        return Path(self.binary).is_file()

    def _config_dir(self, spec: SessionSpec) -> Path:
        return session_dirs(spec.state_dir)["config"]

    def _transcript_path(self, spec: SessionSpec) -> Path:
        slug = transcript_slug(str(spec.workspace))
        return self._config_dir(spec) / "projects" / slug / f"{spec.harness_session_id}.jsonl"

    def has_transcript(self, spec: SessionSpec) -> bool:
        return self._transcript_path(spec).is_file()

    async def transcript(self, spec: SessionSpec) -> list[Message]:
        """Read from Claude Code's own session file, whether or not a CLI is running on it."""
        path = self._transcript_path(spec)

        def read() -> list[Message]:
            with as_session_owner(spec.sandbox):  # never through a link the agent planted
                try:
                    return read_transcript(path)
                except PermissionError:
                    log.warning("the transcript of %s is not the session's own", spec.session_id)
                    return []

        return await asyncio.to_thread(read)

    def _env(self, spec: SessionSpec) -> dict[str, str]:
        dirs = session_dirs(spec.state_dir)
        env = base_env(spec.state_dir)
        env.update(
            {
                "CLAUDE_CONFIG_DIR": str(dirs["config"]),
                "CLAUDE_CODE_TMPDIR": str(dirs["tmp"]),
                # Zero egress: no telemetry, update checks or `/api/hello` probes.
                "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
                "DISABLE_AUTOUPDATER": "1",
                # Subagents finish inside the turn that started them.
                "CLAUDE_CODE_DISABLE_BACKGROUND_TASKS": "1",
            }
        )
        if self.max_retries is not None:
            env["CLAUDE_CODE_MAX_RETRIES"] = str(self.max_retries)
        env.update(spec.model_env)
        return with_project_env(env, spec.project_env)

    def _launcher(self, spec: SessionSpec, env: dict[str, str]) -> Path:
        names = sorted(set(env) | set(SDK_VARIABLES))
        if spec.sandbox is not None:
            return spec.sandbox.launcher(self.binary, names)
        digest = hashlib.sha256(("\0".join([self.binary, *names])).encode()).hexdigest()[:12]
        return write_launcher(self.home / "bin" / f"claude-{digest}", self.binary, names)

    def options(self, spec: SessionSpec, session: ClaudeCodeSession) -> ClaudeAgentOptions:
        with as_session_owner(spec.sandbox):
            env = self._env(spec)
        agent = spec.agent
        system_prompt: dict[str, Any] = {"type": "preset", "preset": "claude_code"}
        if agent.prompt:
            system_prompt["append"] = agent.prompt

        async def can_use_tool(
            tool: str, tool_input: dict[str, Any], ctx: ToolPermissionContext
        ) -> PermissionResultAllow | PermissionResultDeny:
            details = {
                k: v
                for k in ("blocked_path", "decision_reason", "description")
                if (v := getattr(ctx, k, None))
            }
            answer = await session.ask(ToolRequest(tool, tool_input, ctx.tool_use_id, details))
            if answer.verdict is Verdict.ALLOW:
                return PermissionResultAllow()
            return PermissionResultDeny(message=answer.message or "The user denied this action.")

        options = ClaudeAgentOptions(
            cwd=str(spec.workspace),
            cli_path=str(self._launcher(spec, env)),
            env=env,
            setting_sources=["project"],
            system_prompt=system_prompt,  # type: ignore[arg-type]
            include_partial_messages=True,
            permission_mode="default",
            can_use_tool=can_use_tool,
            model=agent.model,
            tools=list(agent.tools) or None,
            stderr=lambda line: session.stderr_tail.append(line.rstrip()),
        )
        if spec.resume:
            options.resume = spec.harness_session_id
        else:
            options.session_id = spec.harness_session_id
        return options

    async def open(self, spec: SessionSpec) -> ClaudeCodeSession:
        session = ClaudeCodeSession(spec, self)
        try:
            await session.connect()
            if spec.pooled:
                await session.prime()
        except BaseException:  # failed, or cancelled (a server stopping): nothing may stay
            await session.close(force=True)
            raise
        return session
