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
from karta.events import Event, done_event
from karta.harness.base import (
    ApprovalAnswer,
    HarnessFailure,
    HarnessGone,
    SessionSpec,
    ToolRequest,
    TurnContext,
    Verdict,
)
from karta.harness.claude_events import ClaudeEventMapper
from karta.harness.environment import (
    SDK_VARIABLES,
    as_session_owner,
    base_env,
    session_dirs,
    with_project_env,
    write_launcher,
)

log = logging.getLogger(__name__)

BUNDLED_CLI = Path(claude_agent_sdk.__file__).parent / "_bundled" / "claude"
# The SDK's own close waits 5 s for the CLI to exit after EOF, then terminates it (5 s more),
# then kills it: a shorter timeout here cancels that escalation and orphans a busy process.
CLOSE_TIMEOUT = 20.0


class ClaudeCodeSession:
    def __init__(self, spec: SessionSpec, harness: ClaudeCodeHarness) -> None:
        self.agent: AgentDefinition = spec.agent
        self.harness_session_id = spec.harness_session_id
        self.stderr_tail: deque[str] = deque(maxlen=40)
        self._turn: TurnContext | None = None
        self._client = ClaudeSDKClient(harness.options(spec, self))
        # Claude Code keeps the system prompt a conversation started with, even on resume.
        self._prompt_is_current = not spec.resume

    async def ask(self, request: ToolRequest) -> ApprovalAnswer:
        """A permission request of the running turn, answered by that turn's handler."""
        if self._turn is None:
            return ApprovalAnswer(Verdict.DENY, "No turn is running.")
        return await self._turn.approvals(request)

    async def connect(self) -> None:
        try:
            await self._client.connect()
        except Exception as exc:
            raise HarnessFailure(f"Claude Code did not start: {exc}") from exc

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
        return "<system-reminder>\n" + "\n".join(lines) + "\n</system-reminder>\n\n" + text

    async def turn(self, ctx: TurnContext) -> AsyncIterator[Event]:
        mapper = ClaudeEventMapper(thinking=ctx.thinking)
        prompt = self._with_agent_instructions(ctx.text, ctx.handoff)
        self._turn = ctx
        try:
            try:
                await self._client.query(prompt)
            except Exception as exc:
                raise HarnessGone(self._describe(exc)) from exc
            try:
                async for message in self._client.receive_response():
                    for event in mapper.map(message):
                        yield event
            except Exception as exc:
                if mapper.result is None:
                    raise HarnessFailure(self._describe(exc)) from exc
                log.debug("claude raised after its result: %s", exc)
        finally:
            self._turn = None
        if mapper.result is None:
            raise HarnessFailure(self._describe(None))
        if ctx.cancelled.is_set():
            status = "cancelled"
        else:
            status = "failed" if mapper.result.is_error else "completed"
        yield done_event(mapper.usage(), status=status)

    async def interrupt(self) -> None:
        await self._client.interrupt()

    def _describe(self, exc: BaseException | None) -> str:
        reason = f"{type(exc).__name__}: {exc}" if exc else "the harness stopped mid-turn"
        tail = "\n".join(self.stderr_tail)
        return f"{reason}\n{tail}".strip()

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self._client.disconnect(), CLOSE_TIMEOUT)
        except Exception as exc:  # a dead or stuck process must not block eviction
            log.warning("closing a Claude Code session failed: %s", exc)


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

    def has_transcript(self, spec: SessionSpec) -> bool:
        slug = transcript_slug(str(spec.workspace))
        transcript = self._config_dir(spec) / "projects" / slug / f"{spec.harness_session_id}.jsonl"
        return transcript.is_file()

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

    async def transcript(self, spec: SessionSpec) -> list[dict[str, Any]]:
        return []  # read from the harness's own storage: see the transcript readers

    async def open(self, spec: SessionSpec) -> ClaudeCodeSession:
        session = ClaudeCodeSession(spec, self)
        await session.connect()
        return session
