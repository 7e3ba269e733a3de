"""The contract between Karta's runtime and a harness adapter.

One `HarnessSession` per live Karta session: it stays warm between turns. Each turn brings its
own `TurnContext` (the approval handler, the emitter, cancellation), so nothing about a turn is
bound when the process opens; the session yields Karta events ending with exactly one `done`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from karta.app import AgentDefinition, HarnessApp
from karta.core.events import Event
from karta.dataplane.sandbox.base import SandboxHandle


class Verdict(StrEnum):
    ALLOW = "allow"
    DENY = "deny"


@dataclass(frozen=True)
class ApprovalAnswer:
    verdict: Verdict
    message: str = ""


@dataclass(frozen=True)
class ToolRequest:
    """What the harness wants to do, as shown to whoever decides."""

    tool: str
    input: dict[str, Any]
    tool_use_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


ApprovalHandler = Callable[[ToolRequest], Awaitable[ApprovalAnswer]]
Emit = Callable[[Event], Awaitable[Event]]


@dataclass(frozen=True)
class SessionSpec:
    """Everything a harness needs to open (or resume) one Karta session's conversation."""

    session_id: str
    app: HarnessApp
    agent: AgentDefinition
    workspace: Path
    state_dir: Path
    harness_session_id: str
    resume: bool
    model_env: dict[str, str]
    # The project's own env vars (`karta env set`): added to the harness's scrubbed environment
    # through `environment.with_project_env`, never over a variable Karta sets.
    project_env: dict[str, str] = field(default_factory=dict)
    # Where the process runs: the harness starts `sandbox.launcher(...)` instead of its binary.
    # None only outside the runtime (benchmarks, tools): unsandboxed, like `KARTA_SANDBOX=none`.
    sandbox: SandboxHandle | None = None
    # Started ahead of demand for the pool: the harness may spend time now on what its first
    # turn would otherwise do on the user's clock.
    pooled: bool = False


@dataclass(frozen=True)
class TurnContext:
    """What one turn gives the harness: its message, who answers permission requests for this
    turn, where out-of-band events go, and whether the turn was asked to stop."""

    turn_id: str
    text: str
    approvals: ApprovalHandler
    emit: Emit
    thinking: bool = False
    handoff: bool = False  # the session's agent changed since the last turn
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)
    # Set by the harness once it has the message (the platform's bookkeeping waits for it).
    handed: asyncio.Event = field(default_factory=asyncio.Event)


class HarnessSession(Protocol):
    harness_session_id: str
    agent: AgentDefinition

    def turn(self, ctx: TurnContext) -> AsyncIterator[Event]:
        """Run one turn, yielding its events and ending with exactly one `done`."""
        ...

    async def interrupt(self) -> None:
        """Ask the harness to stop the running turn now; the turn's iterator then ends (its
        `done` says `cancelled`) and the process stays usable for the next turn."""
        ...

    async def close(self, *, force: bool = False) -> None:
        """End the harness process. `force`: kill it and every process it started at once
        (SIGKILL), for a runtime that must free the slot now; without it the harness may take
        seconds to shut down cleanly."""
        ...


class Harness(Protocol):
    kind: str

    def available(self) -> bool:
        """Whether the harness binary is installed (readiness)."""
        ...

    def has_transcript(self, spec: SessionSpec) -> bool:
        """Whether the harness has stored this conversation (so it can be resumed)."""
        ...

    async def open(self, spec: SessionSpec) -> HarnessSession: ...

    async def transcript(self, spec: SessionSpec) -> list[dict[str, Any]]:
        """The stored conversation, oldest first, as messages: `{"id", "role": "user" |
        "assistant", "parts": [{"type": "text", "text"} | {"type": "reasoning", "text"} |
        {"type": "tool", "id", "tool", "input", "output", "status"}], "created_at"}`."""
        ...


class HarnessFailure(Exception):
    """The harness could not run the turn (crashed, exited, broken protocol)."""


class HarnessGone(HarnessFailure):
    """The harness was found dead before it received the message: replacing it and sending the
    message again is safe (nothing reached the model)."""
