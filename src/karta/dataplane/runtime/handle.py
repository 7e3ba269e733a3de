"""A session as its caller may touch it.

`Runtime.session(principal, id)` is the only way a route gets at a session: it loads the row
once, answers 404 unless the caller owns it, and returns a `SessionHandle`. Reading, replaying
and subscribing to the event log, sending messages, deciding approvals, interrupting, reading
the transcript and ending all go through the handle, so no route can reach another tenant's
session, nor the event log or the database directly.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

from karta.app import HarnessApp
from karta.core import events as ev
from karta.core.errors import (
    ParticipantConflict,
    ParticipantNotFound,
    PendingInput,
    SessionEnded,
    TurnInProgress,
    UnknownGateway,
)
from karta.core.events import Event
from karta.core.ids import new_id
from karta.dataplane.cluster.ownership import Owner
from karta.dataplane.principal import Principal
from karta.dataplane.runtime.approvals import public_approval
from karta.dataplane.runtime.apps import Pin
from karta.dataplane.runtime.lifecycle import Decision
from karta.dataplane.runtime.metering import Billing
from karta.dataplane.runtime.participants import (
    AI,
    HUMAN,
    ParticipantSpec,
    Speaker,
    participant_view,
)
from karta.dataplane.runtime.records import decision_record
from karta.dataplane.runtime.turns import LiveTurn, TurnHandle, TurnRequest
from karta.dataplane.runtime.workspace import session_files
from karta.dataplane.schemas import SessionOut
from karta.dataplane.settings import base_url
from karta.dataplane.store.models import ParticipantRow, SessionRow

if TYPE_CHECKING:
    from karta.dataplane.runtime.service import Runtime

T = TypeVar("T")


class SessionHandle:
    def __init__(
        self, runtime: Runtime, principal: Principal, row: SessionRow, *, forwarded: bool = False
    ) -> None:
        self._runtime = runtime
        self._pipeline = runtime.pipeline
        self.principal = principal
        self.row = row
        self.id = row.id
        self._forwarded = forwarded  # another replica sent this action here, to the owner
        # Set by `Runtime.create_session`: the participants of a session created a moment
        # ago, which has no events, no turn and no pending input yet.
        self.created: list[ParticipantRow] | None = None

    # --- reading ------------------------------------------------------------------------------

    async def view(self, *, reread: bool = True) -> SessionOut:
        """The session object of the API (fresh: the row is re-read, unless the caller has just
        written or read it, as creating or listing sessions does). A session just created is
        shown as it was created, without reading anything."""
        if self.created is not None and not reread:
            return session_view(self.row, self.created, None, turn_running=False, last_seq=0)
        if reread:
            self.row = await self._runtime.repo.session(self.id) or self.row
        row = self.row
        pending = None
        here = self._runtime.ownership.holds(self.id)
        if not here or self._runtime.approvals.waiting(self.id) is not None:
            pending = await self._runtime.repo.pending_approval(self.id)
        return session_view(
            row,
            await self.participants(),
            public_approval(pending) if pending else None,
            turn_running=await self.running_turn() is not None,
            last_seq=await self.last_seq(),
        )

    async def running_turn(self) -> str | None:
        """The id of the turn running (or awaiting input), on whichever replica owns it."""
        if self._runtime.ownership.holds(self.id):
            turn = self._pipeline.running(self.id)
            return turn.turn_id if turn is not None else None
        live = await self._runtime.repo.live_turns(self.id)
        return live[0].id if live else None

    async def last_seq(self) -> int:
        return await self._runtime.events.last_seq(self.id)

    async def read(self, after: int = 0, limit: int | None = None) -> list[Event]:
        return await self._runtime.events.read(self.id, after, limit, fresh=True)

    def subscribe(self, after: int = 0) -> AsyncIterator[Event | None]:
        """Replay after `after`, then the live tail; None is a keep-alive tick."""
        return self._runtime.events.subscribe(self.id, after, self._runtime.settings.keepalive)

    def batches(self, after: int = 0) -> AsyncIterator[list[Event]]:
        """`subscribe`, in the batches that became readable together; [] is a keep-alive."""
        return self._runtime.events.batches(self.id, after, self._runtime.settings.keepalive)

    async def participants(self) -> list[ParticipantRow]:
        return list(await self._runtime.repo.participants(self.id))

    async def participant(self, participant_id: str) -> ParticipantRow:
        found = await self._runtime.repo.participant(self.id, participant_id)
        if found is None:
            raise ParticipantNotFound(f"no participant {participant_id!r} in this session")
        return found

    async def transcript(self) -> list[dict[str, Any]]:
        """The conversation, read from the harness's own transcript (never a copy of Karta's)."""
        return await self._pipeline.transcript(self.row, await self._pinned_app())

    # --- acting -------------------------------------------------------------------------------

    async def send(self, request: TurnRequest) -> TurnHandle:
        """Start a turn (402 over budget, 409 while another runs or waits for a decision), on
        the session's owner."""
        return await self._on_owner(
            lambda: self._send(request),
            lambda owner: self._runtime.forwarder.send(owner, self.principal, self.id, request),
        )

    def _on_owner(
        self, here: Callable[[], Awaitable[T]], there: Callable[[Owner], Awaitable[T]]
    ) -> Awaitable[T]:
        return self._runtime.on_owner(self.id, here, there, forwarded=self._forwarded)

    async def _send(self, request: TurnRequest) -> TurnHandle:
        row = self.row
        if row.status != "active":
            raise SessionEnded(f"session {self.id!r} has ended")
        app = await self._pinned_app()
        agent = app.agent(request.agent or row.current_agent)
        env = await self._runtime.apps.env(row.organization_id, row.project_id)
        named = self.principal.acts_as(request.participant_name)
        async with self._runtime.turn_lock(self.id):
            waiting = self._runtime.approvals.waiting(self.id)
            if waiting is not None:
                raise PendingInput(
                    "resolve the pending input before sending a new message", request_id=waiting
                )
            if self._pipeline.running(self.id) is not None:
                raise TurnInProgress("a turn is already running in this session")
            self._pipeline.live.admit(self.id)
            speaker = await self._speaker(named, request.participant_type)
            billing = await self._bill()
            turn_id = new_id("turn")
            after = await self.last_seq()
            previous = row.current_agent
            message = self._user_message(request, agent.name, speaker)
            opening = []
            if speaker is not None:
                # The others in the session see what was said, and by whom.
                opening.append(message_event(message, speaker))
            if previous != agent.name:
                handoff = Event(
                    ev.SYSTEM, {"subtype": "handoff", "from": previous, "to": agent.name}
                )
                opening.append(stamped(handoff, speaker))
            turn = LiveTurn(
                self.id,
                turn_id,
                app,
                agent,
                request,
                previous != agent.name,
                billing,
                env,
                speaker,
                await self._heading(speaker),
            )
            self._pipeline.launch(turn)
            await self._pipeline.record(turn, after + 1, opening)
            row.current_agent = agent.name
        return TurnHandle(turn_id, self.id, after, agent.name, message)

    async def _heading(self, speaker: Speaker | None) -> Speaker | None:
        """Who the harness is told is speaking: the speaker, except for a session token's end
        user alone in the session (someone chatting with the agent one to one is not
        announced on every message)."""
        if speaker is None:
            return None
        own = self.principal.kind == "session" and speaker.id == self.principal.sub
        if own and len(await self._runtime.repo.participants(self.id)) < 2:
            return None
        return speaker

    async def _speaker(self, named: str | None, kind: str | None) -> Speaker | None:
        """Who the message is from (`principal.acts_as`): that participant, joining the
        session if new (without a type: a session token's end user as a human, anyone else
        as an AI), or nobody."""
        if named is None:
            return None
        if kind is None:
            known = await self._runtime.repo.participant(self.id, named)
            kind = known.type if known else HUMAN if self.principal.kind == "session" else AI
        row, _ = await self.join(ParticipantSpec(named, kind))
        return Speaker.of(row)

    async def add_participant(self, spec: ParticipantSpec) -> tuple[ParticipantRow, bool]:
        """Add a participant (or bring one back); a session token adds only its end user."""
        self.principal.acts_as(spec.id)
        return await self.join(spec)

    async def join(self, spec: ParticipantSpec) -> tuple[ParticipantRow, bool]:
        """`add_participant` without the caller's check (the gateway's senders), returning
        whether the participant is new. One living on another instance must live behind a
        configured peer gateway: that is the only place deliveries ever go."""
        if spec.gateway_url is not None:
            spec = replace(spec, gateway_url=base_url(spec.gateway_url))
            if spec.gateway_url not in self._runtime.settings.gateway_peers:
                raise UnknownGateway(
                    f"{spec.gateway_url!r} is not a gateway this instance delivers to "
                    "(KARTA_GATEWAY_PEERS)",
                    gateway_url=spec.gateway_url,
                )
        row, created = await self._runtime.repo.join(spec.row(self.id))
        if row.type != spec.type:
            raise ParticipantConflict(
                f"participant {spec.id!r} is {row.type!r} in this session, not {spec.type!r}",
                participant=spec.id,
            )
        return row, created

    async def remove_participant(self, participant_id: str) -> ParticipantRow:
        """Mark a participant as gone (it stays listed, with `left_at`)."""
        self.principal.acts_as(participant_id)
        found = await self._runtime.repo.leave(self.id, participant_id)
        if found is None:
            raise ParticipantNotFound(f"no participant {participant_id!r} in this session")
        return found

    async def post(self, message: tuple[dict[str, Any], Speaker]) -> Event:
        """A participant's message outside any turn (the gateway delivered it): recorded in
        the session's log, where everyone streaming the session sees it."""
        return await self.note(message_event(*message))

    async def note(self, event: Event) -> Event:
        """An event of the session outside any turn."""
        return await self._pipeline.emit(self.id, None, event)

    async def _bill(self) -> Billing | None:
        """Who pays for the turn; a turn over budget is refused (402) before anything runs."""
        principal = self.principal
        if principal.organization_id is None:
            return None  # open mode: nobody to bill
        principal.check_budget()
        billing = Billing(
            principal.organization_id,
            principal.api_key_id,
            principal.project_id,
            principal.embed_key_id,
        )
        await self._pipeline.check_budget(billing)
        return billing

    def _user_message(
        self, request: TurnRequest, agent: str, speaker: Speaker | None
    ) -> dict[str, Any]:
        return {
            "id": new_id("msg"),
            "role": "user",
            "text": request.text,
            "agent": agent,
            "participant_name": speaker.id if speaker else None,
            "participant_type": speaker.type if speaker else None,
            "timestamp": self._runtime.clock.now().isoformat(),
        }

    async def decide(self, request_id: str, decision: Decision) -> tuple[str, int]:
        """Answer a pending approval. Returns the paused turn's id and the log position its
        continuation starts after."""
        return await self._on_owner(
            lambda: self._decide(request_id, decision),
            lambda owner: self._runtime.forwarder.decide(
                owner, self.principal, self.id, request_id, str(decision)
            ),
        )

    async def _decide(self, request_id: str, decision: Decision) -> tuple[str, int]:
        after = await self.last_seq()
        audit = None
        if self.principal.organization_id is not None:
            audit = functools.partial(
                decision_record, self.principal, decision, clock=self._runtime.clock
            )
        turn_id = await self._runtime.approvals.decide(self.id, request_id, decision, audit)
        if audit is not None and self._runtime.metering is not None:
            self._runtime.metering.recorded()
        return turn_id, after

    async def interrupt(self) -> tuple[str, int]:
        """Stop the running turn (409 when nothing runs). Returns the turn's id and the log
        position before the interrupt, for a caller who wants what followed."""
        return await self._on_owner(
            self._interrupt,
            lambda owner: self._runtime.forwarder.interrupt(owner, self.principal, self.id),
        )

    async def _interrupt(self) -> tuple[str, int]:
        after = await self.last_seq()
        return await self._pipeline.interrupt(self.id), after

    async def remember_response(self, response_id: str, turn_id: str) -> None:
        """An OpenAI response id ran on this session: `previous_response_id` continues it."""
        await self._runtime.repo.remember_response(response_id, self.id, turn_id)

    async def end(self) -> None:
        """End the session: its owner stops its turn and closes its harness."""
        await self._on_owner(
            self._end, lambda owner: self._runtime.forwarder.end(owner, self.principal, self.id)
        )

    async def _end(self) -> None:
        await self._pipeline.end(self.id)
        await self._runtime.repo.end_session(self.id)
        await asyncio.to_thread(session_files(self._runtime.settings.home, self.id).destroy)
        await self._runtime.ownership.release(self.id)

    async def _pinned_app(self) -> HarnessApp:
        row = self.row
        pin = Pin(row.release_version, row.release_digest)
        return await self._runtime.apps.app(pin, row.organization_id, row.project_slug)


def stamped(event: Event, speaker: Speaker | None) -> Event:
    if speaker is not None:
        event.participant_name, event.participant_type = speaker.id, speaker.type
    return event


def message_event(message: dict[str, Any], speaker: Speaker) -> Event:
    """A participant's message as an event (`data`: the message, with the sender's display
    name)."""
    return stamped(Event(ev.MESSAGE, {**message, "display_name": speaker.display_name}), speaker)


def session_view(
    row: SessionRow,
    participants: list[ParticipantRow],
    pending: dict[str, Any] | None,
    *,
    turn_running: bool,
    last_seq: int,
) -> SessionOut:
    project = None
    if row.project_id is not None:
        project = {
            "ref": row.project_slug,
            "project_id": row.project_id,
            "version": row.release_version,
        }
    release = None
    if row.release_digest is not None:
        release = {"version": row.release_version, "digest": f"sha256:{row.release_digest}"}
    return SessionOut.model_validate(
        {
            "id": row.id,
            "object": "session",
            "app": row.app_name,
            "metadata": row.meta,
            "status": row.status,
            "current_agent": row.current_agent,
            "permission_mode": row.permission_mode,
            "participants": [participant_view(p) for p in participants],
            "pending_input": pending,
            "project": project,
            "release": release,
            "turn_running": turn_running,
            "last_event_seq": last_seq,
            "parent_id": None,
            "created_at": row.created_at.isoformat(),
            "updated_at": row.updated_at.isoformat(),
        }
    )
