"""The runtime: creating, finding and listing sessions, and the parts every session shares.

Karta keeps handles, bindings, approvals and events; the harness keeps the conversation. Routes
get at a session only through `session()` (a `SessionHandle`, 404 unless the caller owns it);
the event log and the database stay private to the runtime.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import async_sessionmaker

from karta.app import HarnessApp
from karta.core.clock import SYSTEM, Clock
from karta.core.errors import InvalidCursor, NotFound, OwnerMoved, SessionNotFound, Unavailable
from karta.core.ids import new_id
from karta.dataplane.cluster.coordinator import Coordinator, InProcess
from karta.dataplane.cluster.forward import Forwarder, OwnerUnreachable
from karta.dataplane.cluster.ownership import Owner, Ownership
from karta.dataplane.eventlog import SqlEventLog
from karta.dataplane.principal import Principal
from karta.dataplane.runtime.approvals import ApprovalBroker
from karta.dataplane.runtime.apps import WORKING_COPY, Apps, Pin
from karta.dataplane.runtime.handle import SessionHandle
from karta.dataplane.runtime.lifecycle import Decision
from karta.dataplane.runtime.metering import Metering
from karta.dataplane.runtime.participants import HUMAN, ParticipantSpec
from karta.dataplane.runtime.pipeline import TurnPipeline
from karta.dataplane.runtime.pool import Demand, Pooled, pool_key
from karta.dataplane.runtime.queries import SessionFilter
from karta.dataplane.runtime.repository import Repository
from karta.dataplane.runtime.workspace import remove_pooled, session_files
from karta.dataplane.sandbox.setup import Isolation
from karta.dataplane.settings import Settings
from karta.dataplane.store.models import HarnessBinding, SessionRow

log = logging.getLogger(__name__)
T = TypeVar("T")
FORWARD_ATTEMPTS = 4


class Runtime:
    def __init__(
        self,
        settings: Settings,
        db: async_sessionmaker,
        apps: Apps,
        isolation: Isolation,
        metering: Metering | None = None,
        clock: Clock = SYSTEM,
        coordinator: Coordinator | None = None,
    ) -> None:
        """`coordinator`: how replicas share leases and wake-ups (None: this process alone)."""
        self.settings = settings
        self.db = db  # for the outbox shippers; sessions go through `repo`
        self.apps = apps
        self.isolation = isolation
        self.metering = metering
        self.clock = clock
        self.repo = Repository(db, clock)
        self.coordinator = coordinator or InProcess()
        self.ownership = Ownership(
            self.coordinator,
            replica=settings.replica_id,
            url=settings.replica_url or "",
            prefix=settings.redis_prefix,
            ttl=settings.lease_ttl,
            idle=settings.idle_timeout,
            clock=clock,
        )
        holds = self.ownership.holds
        self.events = SqlEventLog(
            db,
            self.coordinator,
            replica=settings.replica_id,
            holds=holds,
            poll=settings.events_poll_interval,
        )
        self.approvals = ApprovalBroker(self.repo, settings.approval_ttl)
        self.pipeline = TurnPipeline(
            settings, self.repo, self.events, self.approvals, apps, isolation, metering, holds
        )
        self.forwarder = Forwarder(settings.internal.outbound_token)
        self._turn_locks: dict[str, asyncio.Lock] = {}

    @property
    def app(self) -> HarnessApp:
        """The served folder's app (what the flat routes run)."""
        return self.apps.working_copy

    def ready(self) -> bool:
        return self.apps.ready()

    @property
    def sandbox(self) -> str:
        """Where harness processes run, in plain words (the banner and /readyz say it)."""
        return f"{self.isolation.sandbox.describe()} ({self.isolation.choice})"

    def harnesses(self) -> dict[str, int]:
        """Harness processes by what they are doing: serving sessions (`live`), pre-started
        for the next ones (`pooled`), starting, and first turns waiting for a start."""
        pipeline = self.pipeline
        return {
            "live": len(pipeline.live),
            "pooled": pipeline.pool.size(),
            "starting": pipeline.starts.running,
            "queued": pipeline.starts.waiting,
        }

    async def database_ok(self) -> str | None:
        """None when the database answers, else why not."""
        return await self.repo.ping()

    async def coordinator_ok(self) -> str | None:
        """None when the coordinator (Redis, for replicas) answers, else why not."""
        return await self.coordinator.ping()

    def turn_lock(self, session_id: str) -> asyncio.Lock:
        """Held while a turn is admitted, so two messages cannot both start one."""
        return self._turn_locks.setdefault(session_id, asyncio.Lock())

    async def start(self) -> None:
        left = await asyncio.to_thread(remove_pooled, self.settings.home)
        if left:
            log.info("removed %d pre-started harness folder(s) left by the last run", left)
        await self.coordinator.start(self.events.woken, self.events.resync)
        await self.ownership.start(_Hooks(self))
        self.pipeline.live.start()
        app = self.apps.working_copy
        agent = app.default_agent
        pool = self.pipeline.pool
        pool.serve(
            Demand(
                pool_key(None, WORKING_COPY, app, agent.name, {}),
                WORKING_COPY,
                app,
                agent,
                {},
                None,
            )
        )
        pool.start()

    async def stop(self) -> None:
        await self.pipeline.stop()
        await self.events.close()
        await self.ownership.stop()
        await self.forwarder.close()
        await self.coordinator.close()

    async def on_owner(
        self,
        session_id: str,
        here: Callable[[], Awaitable[T]],
        there: Callable[[Owner], Awaitable[T]],
        *,
        forwarded: bool,
    ) -> T:
        """Run a session's action on its owner: `here` when that is this replica (claiming the
        session if nobody holds it), else `there(owner)`, which forwards it. A `forwarded`
        action arrived from another replica and is never forwarded again."""
        for _ in range(FORWARD_ATTEMPTS):
            owner = await self.ownership.owner(session_id)
            if owner is None:
                return await here()
            if forwarded:
                raise OwnerMoved(f"this replica no longer owns session {session_id!r}")
            try:
                return await there(owner)
            except OwnerUnreachable:
                log.warning("the owner of %s (%s) is unreachable", session_id, owner.replica)
                await self.ownership.settle(session_id, owner)
            except OwnerMoved:
                continue
        raise Unavailable("the session's owner is changing; retry", retry_after=1)

    # --- sessions -----------------------------------------------------------------------------

    async def session(
        self, principal: Principal, session_id: str, *, forwarded: bool = False
    ) -> SessionHandle:
        """The caller's session (404 when it is missing or someone else's). `forwarded`: the
        action comes from another replica, for this one as the session's owner."""
        row = await self.repo.session(session_id)
        if row is None or not principal.owns(row.organization_id, row.project_id, row.meta):
            raise SessionNotFound(f"session {session_id!r} not found")
        return SessionHandle(self, principal, row, forwarded=forwarded)

    async def create_session(
        self,
        principal: Principal,
        metadata: dict[str, Any],
        session_id: str | None = None,
        participants: Iterable[ParticipantSpec] = (),
    ) -> tuple[SessionHandle, bool]:
        """A new session pinned to the caller's active release, with these participants (and
        a session token's end user), or (with `session_id`) the caller's existing one. Returns
        the handle and whether it was created."""
        if session_id is not None:
            return await self.session(principal, session_id), False
        metadata = principal.bind_end_user(metadata)
        joining = list(participants)
        for spec in joining:
            principal.acts_as(spec.id)  # a session token brings only its end user
        sub = principal.sub if principal.kind == "session" else None
        if sub is not None and all(spec.id != sub for spec in joining):
            joining.insert(0, ParticipantSpec(sub, HUMAN))
        pin = await self.apps.pin(principal)
        pooled = await self._pooled(principal, pin)
        if pooled is not None:
            # A pre-started harness: its folders and sandbox are this session's already.
            session_id = pooled.session_id
            app = await self.apps.app(pin, principal.organization_id, principal.project_slug)
        else:
            session_id = new_id("sess")
            files = session_files(self.settings.home, session_id)
            async with self.apps.checkout(
                pin, principal.organization_id, principal.project_slug
            ) as app:
                await asyncio.to_thread(files.create, app.root)
        mode = Decision.APPROVE_SESSION if app.settings.permission_mode == "autonomous" else None
        now = self.clock.now()
        row = SessionRow(
            id=session_id,
            organization_id=principal.organization_id,
            project_id=principal.project_id,
            project_slug=principal.project_slug,
            release_version=pin.version,
            release_digest=pin.digest,
            app_name=app.name,
            meta=metadata,
            status="active",
            current_agent=app.default_agent.name,
            permission_mode=str(mode) if mode else None,
            turn_count=0,
            created_at=now,
            updated_at=now,
        )
        harness_session_id = pooled.session.harness_session_id if pooled else str(uuid.uuid4())
        binding = HarnessBinding(
            session_id=session_id, harness=app.harness, harness_session_id=harness_session_id
        )
        try:
            await self.repo.add_session(row, binding)
            await self.ownership.hold_new(session_id)
        except BaseException:
            if pooled is not None:
                self.pipeline.retire_later(pooled)
            raise
        if pooled is not None:
            await self.pipeline.adopt(pooled, principal.organization_id, principal.project_id)
        handle = SessionHandle(self, principal, row)
        joined = [(await handle.join(spec))[0] for spec in joining]
        handle.created = sorted(joined, key=lambda p: (p.joined_at, p.participant_id))
        return handle, True

    async def _pooled(self, principal: Principal, pin: Pin) -> Pooled | None:
        """Count a new session toward its key's pool, and take a pre-started harness from it
        when one is ready."""
        pool = self.pipeline.pool
        if not pool.enabled:
            return None
        org, project = principal.organization_id, principal.project_id
        app = await self.apps.app(pin, org, principal.project_slug)
        env = await self.apps.env(org, project)
        agent = app.default_agent
        demand = Demand(
            pool_key(project, pin, app, agent.name, env), pin, app, agent, env, principal
        )
        pool.arrived(demand)
        return pool.take(demand.key)

    async def response_session(self, principal: Principal, response_id: str) -> SessionHandle:
        """The session an OpenAI response ran on (`previous_response_id`), 404 as one."""
        session_id = await self.repo.session_of_response(response_id)
        try:
            if session_id is not None:
                return await self.session(principal, session_id)
        except SessionNotFound:
            pass
        raise NotFound(f"previous response {response_id!r} not found")

    async def list_sessions(
        self,
        principal: Principal,
        where: SessionFilter,
        limit: int,
        after: str | None = None,
    ) -> tuple[list[SessionHandle], bool]:
        """The caller's sessions, newest first: a page of `limit` after the session `after`
        (a cursor: the last id of the previous page), and whether more follow."""
        where = replace(where, **principal.session_scope())
        if after is not None:
            try:
                last = await self.session(principal, after)
            except SessionNotFound:
                raise InvalidCursor(f"after: no session {after!r} to continue from") from None
            where = replace(where, before=(last.row.created_at, last.id))
        rows: Sequence[SessionRow] = await self.repo.list_sessions(where, limit + 1)
        handles = [SessionHandle(self, principal, row) for row in rows[:limit]]
        return handles, len(rows) > limit


class _Hooks:
    """What session ownership does to the runtime as sessions come and go."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    async def adopt(self, session_id: str) -> None:
        runtime = self._runtime
        runtime.events.forget(session_id)
        await runtime.pipeline.live.discard(session_id, force=True)  # from an earlier ownership
        await runtime.pipeline.recover(session_id)

    async def abandon(self, session_id: str) -> None:
        await self._runtime.pipeline.abandon(session_id)
        self._runtime.events.forget(session_id)

    def busy(self, session_id: str) -> bool:
        return self._runtime.pipeline.busy(session_id)

    async def orphans(self) -> list[str]:
        return await self._runtime.repo.sessions_with_live_turns()
