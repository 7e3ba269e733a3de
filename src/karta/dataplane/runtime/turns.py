"""A turn as the runtime passes it around: what was asked (`TurnRequest`), what the caller gets
back (`TurnHandle`), and the running turn the pipeline holds (`LiveTurn`)."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field
from typing import Any

from karta.app import AgentDefinition, HarnessApp
from karta.core.events import Event
from karta.core.turn_fold import TurnState
from karta.dataplane.harness.base import HarnessSession
from karta.dataplane.runtime.metering import Billing
from karta.dataplane.runtime.participants import Speaker, attributed
from karta.dataplane.sandbox.meter import CallUsage


@dataclass(frozen=True)
class TurnRequest:
    text: str
    agent: str | None = None
    participant_name: str | None = None
    participant_type: str | None = None
    thinking: bool = False
    # A call that does not continue a conversation (a stateless adapter call): its harness is
    # closed when the turn ends instead of staying warm for a next turn nobody will send.
    ephemeral: bool = False


@dataclass(frozen=True)
class TurnHandle:
    turn_id: str
    session_id: str
    after: int  # the log position just before the turn's first event
    agent: str
    user_message: dict[str, Any]


@dataclass
class LiveTurn:
    session_id: str
    turn_id: str
    app: HarnessApp  # the session's pinned release
    agent: AgentDefinition
    request: TurnRequest
    handoff: bool  # the session's agent changed with this turn
    billing: Billing | None  # None: not metered (open mode, no metering)
    env: dict[str, str]  # the project's env vars, for the harness process only
    speaker: Speaker | None = None  # the participant whose message this is
    heading: Speaker | None = None  # who the harness is told speaks (None: the text as it is)
    state: TurnState = TurnState.RUNNING
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)
    harness: HarnessSession | None = None
    task: asyncio.Task[None] | None = None
    # The model calls the proxy forwarded for this turn, with the provider's own usage, and
    # the writes of their usage events to the outbox.
    calls: list[CallUsage] = field(default_factory=list)
    writes: list[asyncio.Task[None]] = field(default_factory=list)
    # Calls admitted whose usage has not come back yet, and the event set when none is left.
    open_calls: int = 0
    calls_ended: asyncio.Event = field(default_factory=asyncio.Event)
    failure: Event | None = None  # why the platform ended the turn (budget, disk)
    # The harness is given the message before the turn's row is stored (a warm one takes it
    # first, `handed`; a cold start overlaps the write); its events wait for `recorded`.
    # `dropped`: the row could not be stored, and nothing of the turn is logged.
    recorded: asyncio.Event = field(default_factory=asyncio.Event)
    dropped: bool = False
    # The harness has the message, or will not take it soon (the turn emitted, ended, or found
    # its harness gone).
    handed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def prompt(self) -> str:
        """The message as the harness reads it: headed by its sender, if it names one."""
        return attributed(self.request.text, self.heading)

    @property
    def harness_config(self) -> tuple[str, str]:
        """What a warm harness must have been opened with to take this turn: the agent, and
        the project's env vars (by digest: a changed value needs a fresh process)."""
        return harness_config(self.agent.name, self.env)


def harness_config(agent: str, env: dict[str, str]) -> tuple[str, str]:
    """What a harness process is opened with, as `LiveHarnesses` compares it: the agent's name
    and a digest of the project's env vars."""
    items = "\0".join(f"{k}={v}" for k, v in sorted(env.items()))
    return agent, hashlib.sha256(items.encode()).hexdigest()
