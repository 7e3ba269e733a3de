"""The turn pipeline and session handles.

A turn runs as a background task that appends its events to the session's event log; HTTP
responses, reconnecting clients and the CLI all read that one log. Karta keeps handles, bindings,
approvals and events; the harness keeps the conversation.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import uuid
from dataclasses import asdict, dataclass, replace
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import async_sessionmaker

from karta import events as ev
from karta.app import AgentDefinition, HarnessApp
from karta.config import Settings
from karta.errors import (
    PendingInput,
    SessionEnded,
    SessionNotFound,
    TurnInProgress,
)
from karta.eventlog import SqlEventLog
from karta.events import Event
from karta.harness.base import (
    ApprovalAnswer,
    HarnessFailure,
    HarnessGone,
    HarnessSession,
    SessionSpec,
    ToolRequest,
)
from karta.ids import new_id
from karta.principal import Principal
from karta.runtime.approvals import APPROVE_SESSION, ApprovalBroker, public_approval
from karta.runtime.apps import Apps, Pin
from karta.runtime.live import LiveHarnesses
from karta.runtime.metering import Billing, Metering
from karta.runtime.workspace import session_files
from karta.store.models import (
    ApprovalRow,
    AuditOutbox,
    HarnessBinding,
    SessionRow,
    TurnRow,
    UsageOutbox,
    utcnow,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TurnRequest:
    text: str
    agent: str | None = None
    participant_name: str | None = None
    participant_type: str | None = None
    thinking: bool = False


@dataclass(frozen=True)
class TurnHandle:
    turn_id: str
    session_id: str
    after: int  # the log position just before the turn's first event
    agent: str
    user_message: dict[str, Any]


@dataclass(frozen=True)
class LiveTurn:
    session_id: str
    turn_id: str
    app: HarnessApp  # the session's pinned release
    agent: AgentDefinition
    request: TurnRequest
    handoff: bool  # the session's agent changed with this turn
    billing: Billing | None  # None: not metered (open mode, no metering)
    env: dict[str, str]  # the project's env vars, for the harness process only

    @property
    def harness_config(self) -> tuple[str, str]:
        """What a warm harness must have been opened with to take this turn: the agent, and
        the project's env vars (by digest: a changed value needs a fresh process)."""
        items = "\0".join(f"{k}={v}" for k, v in sorted(self.env.items()))
        return self.agent.name, hashlib.sha256(items.encode()).hexdigest()


def usage_row(
    billing: Billing, session_id: str, turn_id: str, usage: dict[str, Any]
) -> UsageOutbox:
    """A finished turn's usage event. Every billed turn gets one, failed turns too: it is what
    settles the turn's reservation."""
    model = usage.get("model")
    return UsageOutbox(
        event_id=new_id("use"),
        organization_id=billing.organization_id,
        api_key_id=billing.api_key_id,
        project_id=billing.project_id,
        session_id=session_id,
        turn_id=turn_id,
        reservation_id=billing.reservation_id,
        model=model[:128] if isinstance(model, str) else None,  # the ledger column's width
        input_tokens=int(usage.get("input_tokens") or 0),
        output_tokens=int(usage.get("output_tokens") or 0),
        cache_read_tokens=int(usage.get("cache_read_tokens") or 0),
        cache_write_tokens=int(usage.get("cache_write_tokens") or 0),
        occurred_at=utcnow(),
    )


def decision_record(principal: Principal, decision: str, approval: ApprovalRow) -> AuditOutbox:
    """The audit log's row for an approval decided by `principal` (who decided what)."""
    assert principal.organization_id is not None
    return AuditOutbox(
        event_id=new_id("aud"),
        organization_id=principal.organization_id,
        actor_type="end_user" if principal.kind == "session" else "api_key",
        api_key_id=principal.api_key_id,
        subject=principal.sub,
        action="approval.decided",
        resource_type="approval",
        resource_id=approval.request_id,
        details={
            "session_id": approval.session_id,
            "turn_id": approval.turn_id,
            "kind": approval.kind,
            "tool": approval.tool,
            "decision": decision,
        },
        occurred_at=utcnow(),
    )


class Runtime:
    def __init__(
        self,
        settings: Settings,
        db: async_sessionmaker,
        apps: Apps,
        model_env: dict[str, str],
        metering: Metering | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.apps = apps
        self.model_env = model_env
        self.metering = metering
        self.events = SqlEventLog(db)
        self.approvals = ApprovalBroker(db, settings.approval_ttl)
        self.live = LiveHarnesses(
            idle_timeout=settings.idle_timeout, max_live=settings.max_live_harnesses
        )
        self._running: dict[str, asyncio.Task[None]] = {}  # the session's live turn
        self._tasks: set[asyncio.Task[None]] = set()  # every turn task, until fully done
        self._current_turn: dict[str, str] = {}
        self._turn_locks: dict[str, asyncio.Lock] = {}

    @property
    def app(self) -> HarnessApp:
        """The served folder's app (what the flat routes run)."""
        return self.apps.working_copy

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        await self._recover()
        self.live.start()

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.live.close_all()
        await self.events.close()

    async def _recover(self) -> None:
        """No turn survives a restart: close the log of every interrupted turn honestly."""
        await self.approvals.abort_orphans()
        async with self.db() as db:
            stale = list(
                (await db.scalars(select(TurnRow).where(TurnRow.status == "running"))).all()
            )
        for turn in stale:
            await self._emit(
                turn.session_id,
                turn.id,
                ev.error_event("the server restarted while this turn was running", "turn_aborted"),
            )
            billing = Billing(**turn.billing) if turn.billing else None
            await self._finish(turn.session_id, turn.id, ev.done_event(status="failed"), billing)

    # --- sessions -----------------------------------------------------------------------------

    async def _load(self, principal: Principal, session_id: str) -> SessionRow:
        async with self.db() as db:
            row = await db.get(SessionRow, session_id)
        if row is None or not principal.owns(row.organization_id, row.project_id, row.meta):
            raise SessionNotFound(f"session {session_id!r} not found")
        return row

    async def create_session(
        self, principal: Principal, metadata: dict[str, Any], session_id: str | None = None
    ) -> tuple[dict[str, Any], bool]:
        if session_id is not None:
            row = await self._load(principal, session_id)
            return await self.view(row), False
        metadata = principal.bind_end_user(metadata)
        pin = await self.apps.pin(principal)
        session_id = new_id("sess")
        files = session_files(self.settings.home, session_id)
        async with self.apps.checkout(
            pin, principal.organization_id, principal.project_slug
        ) as app:
            await asyncio.to_thread(files.create, app.root)
        mode = APPROVE_SESSION if app.settings.permission_mode == "autonomous" else None
        row = SessionRow(
            id=session_id,
            organization_id=principal.organization_id,
            project_id=principal.project_id,
            project_slug=principal.project_slug,
            release_version=pin.version,
            release_digest=pin.digest,
            app_name=app.name,
            meta=metadata,
            current_agent=app.default_agent.name,
            permission_mode=mode,
            participants=[],
        )
        async with self.db() as db, db.begin():
            db.add(row)
            await db.flush()
            db.add(
                HarnessBinding(
                    session_id=row.id,
                    harness=app.harness,
                    harness_session_id=str(uuid.uuid4()),
                )
            )
        return await self.view(row), True

    async def _pinned_app(self, row: SessionRow) -> HarnessApp:
        pin = Pin(row.release_version, row.release_digest)
        return await self.apps.app(pin, row.organization_id, row.project_slug)

    async def get_session(self, principal: Principal, session_id: str) -> dict[str, Any]:
        return await self.view(await self._load(principal, session_id))

    async def end_session(self, principal: Principal, session_id: str) -> None:
        row = await self._load(principal, session_id)
        task = self._running.get(session_id)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self.live.discard(session_id)
        async with self.db() as db, db.begin():
            await db.execute(
                update(SessionRow)
                .where(SessionRow.id == row.id)
                .values(status="ended", updated_at=utcnow())
            )
        await asyncio.to_thread(session_files(self.settings.home, row.id).destroy)

    async def view(self, row: SessionRow) -> dict[str, Any]:
        async with self.db() as db:
            fresh = await db.get(SessionRow, row.id)
        row = fresh or row
        pending = await self.approvals.pending(row.id)
        return {
            "id": row.id,
            "object": "session",
            "app": row.app_name,
            "metadata": row.meta,
            "status": row.status,
            "current_agent": row.current_agent,
            "permission_mode": row.permission_mode,
            "participants": row.participants,
            "pending_input": public_approval(pending) if pending else None,
            "project": {
                "ref": row.project_slug,
                "project_id": row.project_id,
                "version": row.release_version,
            }
            if row.project_id is not None
            else None,
            "release": {"version": row.release_version, "digest": f"sha256:{row.release_digest}"}
            if row.release_digest is not None
            else None,
            "turn_running": row.id in self._running,
            "last_event_seq": await self.events.last_seq(row.id),
            "parent_id": None,
            "created_at": row.created_at.isoformat(),
            "updated_at": row.updated_at.isoformat(),
        }

    # --- turns --------------------------------------------------------------------------------

    async def start_turn(
        self, principal: Principal, session_id: str, request: TurnRequest
    ) -> TurnHandle:
        row = await self._load(principal, session_id)
        if row.status != "active":
            raise SessionEnded(f"session {session_id!r} has ended")
        app = await self._pinned_app(row)
        agent = app.agent(request.agent or row.current_agent)
        env = await self.apps.env(row.organization_id, row.project_id)
        async with self._turn_locks.setdefault(session_id, asyncio.Lock()):
            waiting = self.approvals.waiting(session_id)
            if waiting is not None:
                raise PendingInput(
                    "resolve the pending input before sending a new message", request_id=waiting
                )
            if session_id in self._running:
                raise TurnInProgress("a turn is already running in this session")
            billing = await self._bill(principal)
            turn_id = new_id("turn")
            after = await self.events.last_seq(session_id)
            handoff = row.current_agent != agent.name
            user_message = await self._prepare(row, turn_id, agent, request, after, billing)
            self._current_turn[session_id] = turn_id
            task = asyncio.create_task(
                self._run(LiveTurn(session_id, turn_id, app, agent, request, handoff, billing, env))
            )
            self._running[session_id] = task
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return TurnHandle(turn_id, session_id, after, agent.name, user_message)

    async def _bill(self, principal: Principal) -> Billing | None:
        """Refuse a turn over budget (402) before anything runs; reserve budget for it."""
        if principal.organization_id is None:
            return None  # open mode: nobody to bill
        principal.check_budget()
        reservation = await self.metering.reserve(principal) if self.metering else None
        return Billing(
            principal.organization_id, principal.api_key_id, principal.project_id, reservation
        )

    async def _prepare(
        self,
        row: SessionRow,
        turn_id: str,
        agent: AgentDefinition,
        request: TurnRequest,
        after: int,
        billing: Billing | None,
    ) -> dict[str, Any]:
        participants = list(row.participants or [])
        if request.participant_name and all(
            p["name"] != request.participant_name for p in participants
        ):
            participants.append(
                {"name": request.participant_name, "type": request.participant_type or "ai"}
            )
        previous = row.current_agent
        async with self.db() as db, db.begin():
            db.add(
                TurnRow(
                    id=turn_id,
                    session_id=row.id,
                    agent=agent.name,
                    status="running",
                    first_seq=after + 1,
                    billing=asdict(billing) if billing else None,
                )
            )
            await db.flush()
            await db.execute(
                update(SessionRow)
                .where(SessionRow.id == row.id)
                .values(
                    current_agent=agent.name,
                    participants=participants,
                    turn_count=SessionRow.turn_count + 1,
                    updated_at=utcnow(),
                )
            )
        if previous != agent.name:
            await self._emit(
                row.id,
                turn_id,
                Event(ev.SYSTEM, {"subtype": "handoff", "from": previous, "to": agent.name}),
            )
        return {
            "id": new_id("msg"),
            "role": "user",
            "text": request.text,
            "agent": agent.name,
            "participant_name": request.participant_name,
            "participant_type": (request.participant_type or "ai")
            if request.participant_name
            else None,
            "timestamp": utcnow().isoformat(),
        }

    async def _emit(self, session_id: str, turn_id: str, event: Event) -> Event:
        event.turn_id = turn_id
        return await self.events.append(session_id, event)

    async def _open(self, turn: LiveTurn) -> HarnessSession:
        session_id, turn_id = turn.session_id, turn.turn_id
        harness = self.apps.harness(turn.app.harness)
        async with self.db() as db:
            binding = await db.get(HarnessBinding, session_id)
        assert binding is not None, "every session is created with a harness binding"
        files = session_files(self.settings.home, session_id)

        async def approvals(request: ToolRequest) -> ApprovalAnswer:
            current = self._current_turn.get(session_id, turn_id)
            return await self.approvals.request(
                session_id,
                current,
                request,
                lambda e: self._emit(session_id, current, e),
                files.workspace,
            )

        spec = SessionSpec(
            session_id=session_id,
            app=turn.app,
            agent=turn.agent,
            workspace=files.workspace,
            state_dir=files.state,
            harness_session_id=binding.harness_session_id,
            resume=False,
            model_env=self.model_env,
            approvals=approvals,
            project_env=turn.env,
        )
        if await asyncio.to_thread(harness.has_transcript, spec):
            spec = replace(spec, resume=True)
        session = await harness.open(spec)
        if session.harness_session_id != binding.harness_session_id:
            # Harnesses that name their own conversations (OpenCode) report the id on open.
            async with self.db() as db, db.begin():
                await db.execute(
                    update(HarnessBinding)
                    .where(HarnessBinding.session_id == session_id)
                    .values(harness_session_id=session.harness_session_id)
                )
        return session

    async def _run(self, turn: LiveTurn) -> None:
        session_id, turn_id = turn.session_id, turn.turn_id
        done = ev.done_event(status="failed")
        try:
            done = await self._drive(turn)
        except HarnessFailure as exc:
            log.warning("turn %s failed in the harness: %s", turn_id, exc)
            await self.live.discard(session_id)
            await self._emit(
                session_id,
                turn_id,
                ev.error_event(
                    "the harness stopped before finishing the turn",
                    "harness_crashed",
                    details=str(exc)[-2000:],
                ),
            )
        except asyncio.CancelledError:
            await self.live.discard(session_id)
            await self._emit(
                session_id, turn_id, ev.error_event("the turn was cancelled", "turn_cancelled")
            )
            done = ev.done_event(status="cancelled")
        except Exception as exc:
            log.exception("turn %s failed", turn_id)
            await self.live.discard(session_id)
            await self._emit(
                session_id,
                turn_id,
                ev.error_event(str(exc) or type(exc).__name__, getattr(exc, "code", "turn_failed")),
            )
        finally:
            try:
                await self._finish(session_id, turn_id, done, turn.billing)
            finally:
                self._release_slot(session_id, turn_id)

    async def _drive(self, turn: LiveTurn) -> Event:
        """Run the turn on the session's harness and return its `done`. A harness found dead
        before it took the message (it died while idle) is replaced once, transparently."""
        session_id, turn_id = turn.session_id, turn.turn_id
        for attempt in (1, 2):
            harness = await self.live.acquire(
                session_id, turn.harness_config, lambda: self._open(turn)
            )
            try:
                events = harness.turn(
                    turn.request.text, thinking=turn.request.thinking, handoff=turn.handoff
                )
                async for event in events:
                    if event.type == ev.DONE:
                        return event
                    await self._emit(session_id, turn_id, event)
                raise HarnessFailure("the harness ended the turn without a result")
            except HarnessGone:
                if attempt == 2:
                    raise
                log.info("the harness of %s was gone; starting a fresh one", session_id)
                await self.live.discard(session_id)
            finally:
                self.live.release(session_id)
        raise AssertionError("unreachable: the second attempt returns or raises")

    def _release_slot(self, session_id: str, turn_id: str) -> None:
        """Let the session take its next turn (once; never a later turn's slot)."""
        if self._current_turn.get(session_id) == turn_id:
            self._running.pop(session_id, None)
            self._current_turn.pop(session_id, None)

    async def _finish(
        self, session_id: str, turn_id: str, done: Event, billing: Billing | None = None
    ) -> None:
        # The client learns the turn ended first, and may start the next one at once (no await
        # between the `done` and freeing the slot); the bookkeeping follows.
        await self._emit(session_id, turn_id, done)
        self._release_slot(session_id, turn_id)
        async with self.db() as db, db.begin():
            if billing is not None:
                db.add(usage_row(billing, session_id, turn_id, done.data.get("usage") or {}))
            await db.execute(
                update(TurnRow)
                .where(TurnRow.id == turn_id)
                .values(
                    status="completed" if done.data.get("status") == "completed" else "failed",
                    usage=done.data.get("usage"),
                    finished_at=utcnow(),
                )
            )
            await db.execute(
                update(SessionRow).where(SessionRow.id == session_id).values(updated_at=utcnow())
            )
        if billing is not None and self.metering is not None:
            self.metering.recorded()
        await self.events.prune(session_id, self.settings.max_events_per_session)

    async def decide(
        self, principal: Principal, session_id: str, request_id: str, decision: str
    ) -> tuple[str, int]:
        """Answer a pending approval. Returns the paused turn's id and the log position its
        continuation starts after."""
        await self._load(principal, session_id)
        after = await self.events.last_seq(session_id)
        audit = None
        if principal.organization_id is not None:
            audit = functools.partial(decision_record, principal, decision)
        turn_id = await self.approvals.decide(session_id, request_id, decision, audit)
        if audit is not None and self.metering is not None:
            self.metering.recorded()
        return turn_id, after

    def running_turn(self, session_id: str) -> str | None:
        return self._current_turn.get(session_id) if session_id in self._running else None

    async def interrupt(self, principal: Principal, session_id: str) -> str | None:
        """Stop the session's running turn, paused or not: it ends `cancelled` (its harness
        process is closed; the next turn resumes the transcript). Returns the turn's id."""
        await self._load(principal, session_id)
        task = self._running.get(session_id)
        turn_id = self.running_turn(session_id)
        if task is None:
            return None
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return turn_id
