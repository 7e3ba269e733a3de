"""The turn pipeline: a turn runs as a background task that appends its events to the session's
event log; HTTP responses, reconnecting clients and the CLI all read that one log.

Each turn gives its harness a `TurnContext` of its own (the approval handler that pauses this
turn, the emitter, the cancellation flag), so nothing about a turn is bound when a warm harness
opens. The turn's state moves only along `lifecycle.TURN_TRANSITIONS` and is stored as it moves.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from karta.app import AgentDefinition, HarnessApp
from karta.app.loader import OPENCODE
from karta.core import events as ev
from karta.core.errors import BudgetExhausted, NoTurnRunning
from karta.core.events import Event
from karta.core.ids import new_id
from karta.core.turn_fold import TurnState, ended_state
from karta.dataplane.eventlog import SqlEventLog
from karta.dataplane.harness.base import (
    ApprovalAnswer,
    HarnessFailure,
    HarnessGone,
    HarnessSession,
    SessionSpec,
    ToolRequest,
    TurnContext,
)
from karta.dataplane.runtime import disk
from karta.dataplane.runtime.approvals import ApprovalBroker
from karta.dataplane.runtime.apps import Apps
from karta.dataplane.runtime.live import LiveHarnesses
from karta.dataplane.runtime.metering import Billing, Metering
from karta.dataplane.runtime.pool import Demand, HarnessPool, Pooled
from karta.dataplane.runtime.records import usage_row
from karta.dataplane.runtime.repository import Repository
from karta.dataplane.runtime.starts import StartGate
from karta.dataplane.runtime.turns import LiveTurn
from karta.dataplane.runtime.workspace import session_files
from karta.dataplane.sandbox.base import SandboxHandle, SandboxRequest
from karta.dataplane.sandbox.meter import CallUsage, turn_usage
from karta.dataplane.sandbox.proxy import Grant, Refusal, Usage
from karta.dataplane.sandbox.session import SandboxedSession
from karta.dataplane.sandbox.setup import Isolation
from karta.dataplane.settings import Settings
from karta.dataplane.store.models import SessionRow, UsageOutbox

log = logging.getLogger(__name__)

# How long an interrupted turn may take to stop by itself (the harness was asked to) before its
# process is killed; the turn ends `cancelled` either way, within about this long.
INTERRUPT_GRACE = 1.5
# How long a finished turn waits for the usage of model calls still finishing in the proxy.
CALL_SETTLE = 0.5
# How long the pool waits after handing out a process before it starts the next: the session
# that took it runs its first turn meanwhile, without a start beside it.
REFILL_PAUSE = 1.0
# How long a turn's row waits for a warm harness to take the message (a millisecond or so; a
# harness stuck on its input holds up the turn's start no longer than this).
HANDOVER_WAIT = 1.0


class TurnPipeline:
    def __init__(
        self,
        settings: Settings,
        repository: Repository,
        events: SqlEventLog,
        approvals: ApprovalBroker,
        apps: Apps,
        isolation: Isolation,
        metering: Metering | None,
        holds: Callable[[str], bool],
    ) -> None:
        """`holds(session_id)`: whether this replica still owns the session."""
        self.settings = settings
        self.holds = holds
        self.repo = repository
        self.events = events
        self.approvals = approvals
        self.apps = apps
        self.isolation = isolation
        self.metering = metering
        self.live = LiveHarnesses(
            idle_timeout=settings.idle_timeout,
            max_live=settings.max_live_harnesses,
            clock=repository.clock,
        )
        self.starts = StartGate(settings.max_starts)
        self.pool = HarnessPool(
            minimum=settings.pool_min,
            maximum=settings.pool_max,
            window=settings.pool_window,
            keep=settings.idle_timeout,
            clock=repository.clock,
            gate=self.starts,
            start=self._prestart,
            retire=self._retire,
            active=apps.pin,
            pause=REFILL_PAUSE,
        )
        self._turns: dict[str, LiveTurn] = {}  # the session's live turn
        self._settling: Counter[str] = Counter()  # sessions whose ended turns are written down
        self._tasks: set[asyncio.Task[Any]] = set()  # turn tasks and closings, until done

    def running(self, session_id: str) -> LiveTurn | None:
        return self._turns.get(session_id)

    def busy(self, session_id: str) -> bool:
        """A turn of the session runs here, or one that ended is still being written down (its
        session is not given up meanwhile: a new owner would settle that turn a second time)."""
        return session_id in self._turns or session_id in self._settling

    # --- lifecycle ----------------------------------------------------------------------------

    async def recover(self, session_id: str) -> None:
        """This replica just became the session's owner. A turn does not survive the process
        that ran it: close the log of one its previous owner left live, honestly — aborted
        by a restart of this replica, crashed when another replica died under it."""
        await self.repo.abort_pending_approvals(session_id)
        for turn in await self.repo.live_turns(session_id):
            done = await self._logged_done(session_id, turn.id, turn.first_seq)
            if done is not None:
                # Stopped between telling the client and writing the row down: finish the
                # bookkeeping with what the turn really ended with.
                await self._settle(session_id, turn.id, done)
                continue
            if turn.replica_id in (None, self.settings.replica_id):
                error = ev.error_event(
                    "the server restarted while this turn was running", "turn_aborted"
                )
            else:
                error = ev.error_event(
                    "the replica running this turn stopped before finishing it",
                    "harness_crashed",
                    replica=turn.replica_id,
                )
            await self.emit(session_id, turn.id, error)
            await self._finish(session_id, turn.id, ev.done_event(status="failed"))

    async def abandon(self, session_id: str) -> None:
        """This replica no longer owns the session: stop a turn of it that still runs here
        (its events are no longer written: the new owner closes it) and close its harness."""
        turn = self._turns.pop(session_id, None)
        if turn is not None and turn.task is not None:
            turn.cancelled.set()
            turn.task.cancel()
            await asyncio.gather(turn.task, return_exceptions=True)
        self.approvals.abort(session_id)
        await self.live.discard(session_id, force=True)

    async def _logged_done(self, session_id: str, turn_id: str, first_seq: int) -> Event | None:
        events = await self.events.read(session_id, max(0, first_seq - 1))
        return next((e for e in events if e.type == ev.DONE and e.turn_id == turn_id), None)

    async def stop(self) -> None:
        await self.pool.close()
        for turn in list(self._turns.values()):
            if turn.task is not None:
                turn.task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.live.close_all()

    # --- running a turn -----------------------------------------------------------------------

    async def emit(self, session_id: str, turn_id: str | None, event: Event) -> Event:
        """Append an event of a turn (or, with no `turn_id`, of the session), stamped with the
        participant the running turn answers."""
        event.turn_id = turn_id
        turn = self._turns.get(session_id)
        if turn is not None and turn.turn_id == turn_id:
            turn.handed.set()  # whatever the harness does next, `record` waits no longer
            await turn.recorded.wait()  # the turn's row and opening events come first
            if turn.dropped:
                return event
            if turn.speaker is not None:
                event.participant_name = event.participant_name or turn.speaker.id
                event.participant_type = event.participant_type or turn.speaker.type
        return await self.events.append(session_id, event)

    def launch(self, turn: LiveTurn) -> None:
        """Run a prepared turn in the background; the session is busy until its `done`. The
        harness is given the message at once; the turn's events wait for `record`."""
        self._turns[turn.session_id] = turn
        turn.task = self._track(self._run(turn))

    async def record(self, turn: LiveTurn, first_seq: int, opening: list[Event]) -> None:
        """Store a launched turn's row (its events start at `first_seq`), then log its
        `opening` events (the user's message, a handoff) before anything the harness said
        meanwhile. When the row cannot be stored the turn is dropped: stopped, its harness
        closed (it has heard a message nobody will see answered), nothing of it logged, and
        the error raised.

        A warm harness is handed the message first: the row's write runs on the loop's thread
        (`karta.core.sqlite_inline`), and it would otherwise hold the message back by its own
        length. A cold start is not waited for."""
        if self.live.ready(turn.session_id, turn.harness_config):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(turn.handed.wait(), HANDOVER_WAIT)
        try:
            await self.repo.start_turn(
                turn.session_id,
                turn.turn_id,
                turn.agent.name,
                first_seq,
                self.settings.replica_id,
            )
        except BaseException:
            turn.dropped = True
            turn.recorded.set()
            assert turn.task is not None
            turn.task.cancel()
            await asyncio.gather(turn.task, return_exceptions=True)
            if self._turns.get(turn.session_id) is turn:
                del self._turns[turn.session_id]
            await self.live.discard(turn.session_id, force=True)
            raise
        for event in opening:
            event.turn_id = turn.turn_id
            await self.events.append(turn.session_id, event)
        turn.recorded.set()

    def _track(self, work: Any) -> asyncio.Task[Any]:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _run(self, turn: LiveTurn) -> None:
        session_id, turn_id = turn.session_id, turn.turn_id
        done = ev.done_event(status="failed")
        watcher = self._track(self._bound_disk(turn))
        try:
            done = await self._drive(turn)
        except HarnessFailure as exc:
            log.warning("turn %s failed in the harness: %s", turn_id, exc)
            await self.live.discard(session_id, force=True)
            await self.emit(
                session_id,
                turn_id,
                ev.error_event(
                    "the harness stopped before finishing the turn",
                    "harness_crashed",
                    details=str(exc)[-2000:],
                ),
            )
        except asyncio.CancelledError:
            # Killed, not finished: the process is closed in the background so the client
            # hears `done` at once (a busy CLI can take seconds to exit).
            self._track(self.live.discard(session_id, force=True))
            if turn.failure is None:
                await self.emit(
                    session_id, turn_id, ev.error_event("the turn was cancelled", "turn_cancelled")
                )
                done = ev.done_event(status="cancelled")
        except Exception as exc:
            log.exception("turn %s failed", turn_id)
            await self.live.discard(session_id, force=True)
            await self.emit(
                session_id,
                turn_id,
                ev.error_event(str(exc) or type(exc).__name__, getattr(exc, "code", "turn_failed")),
            )
        finally:
            turn.handed.set()
            watcher.cancel()
            if not turn.dropped:  # a dropped turn is cleared by `record`
                await self._close(turn, done)

    async def _close(self, turn: LiveTurn, done: Event) -> None:
        """A turn that ran (or failed, or was stopped): its last events, its `done`, its
        bookkeeping."""
        session_id, turn_id = turn.session_id, turn.turn_id
        if turn.failure is not None:
            await self.emit(session_id, turn_id, turn.failure)
        elif turn.cancelled.is_set() and done.data.get("status") != "cancelled":
            done = ev.done_event(done.data.get("usage"), status="cancelled")
        await self._finish(session_id, turn_id, done, turn)
        if turn.request.ephemeral:
            # Nobody continues this conversation: its memory goes back now, not after the
            # idle timeout.
            self._track(self.live.close_idle(session_id))

    async def _drive(self, turn: LiveTurn) -> Event:
        """Run the turn on the session's harness and return its `done`. A harness found dead
        before it took the message (it died while idle) is replaced once, transparently."""
        session_id = turn.session_id
        ctx = TurnContext(
            turn_id=turn.turn_id,
            text=turn.prompt,
            approvals=lambda request: self._ask(turn, request),
            emit=lambda event: self.emit(session_id, turn.turn_id, event),
            thinking=turn.request.thinking,
            handoff=turn.handoff,
            cancelled=turn.cancelled,
            handed=turn.handed,
        )
        for attempt in (1, 2):
            turn.harness = await self.live.acquire(
                session_id, turn.harness_config, lambda: self._open(turn)
            )
            try:
                async for event in turn.harness.turn(ctx):
                    if event.type == ev.DONE:
                        return event
                    await ctx.emit(event)
                raise HarnessFailure("the harness ended the turn without a result")
            except HarnessGone:
                turn.handed.set()  # a fresh process is started: `record` does not wait for it
                if attempt == 2:
                    raise
                log.info("the harness of %s was gone; starting a fresh one", session_id)
                await self.live.discard(session_id)
            finally:
                self.live.release(session_id)
        raise AssertionError("unreachable: the second attempt returns or raises")

    async def _bound_disk(self, turn: LiveTurn) -> None:
        """End the turn if it grows its session's folder past the disk limit."""
        root = session_files(self.settings.home, turn.session_id).root
        limit = self.settings.session_disk_bytes
        used = await disk.watch(root, limit, self.settings.disk_check_interval, self.repo.clock)
        log.warning("turn %s went over its session's disk limit", turn.turn_id)
        message = f"the session's files take {used >> 20} MiB, over its limit of {limit >> 20} MiB"
        self._fail(
            turn,
            ev.error_event(message, "disk_quota_exceeded", used_bytes=used, limit_bytes=limit),
        )

    async def _ask(self, turn: LiveTurn, request: ToolRequest) -> ApprovalAnswer:
        """The harness asks permission: the turn waits for a decision (or its expiry)."""
        workspace = session_files(self.settings.home, turn.session_id).workspace
        try:
            return await self.approvals.request(
                turn.session_id,
                turn.turn_id,
                request,
                lambda event: self.emit(turn.session_id, turn.turn_id, event),
                workspace,
                on_pause=lambda: self._move(turn, TurnState.AWAITING_INPUT),
            )
        finally:
            if turn.state is TurnState.AWAITING_INPUT:
                await self._move(turn, TurnState.RUNNING)

    async def _move(self, turn: LiveTurn, state: TurnState) -> None:
        await turn.recorded.wait()
        await self.repo.move_turn(turn.turn_id, state)
        turn.state = state

    async def _spec(
        self, session_id: str, app: HarnessApp, agent: AgentDefinition, env: dict[str, str]
    ) -> SessionSpec:
        """What the harness opens (or resumes) the session's conversation with."""
        binding = await self.repo.binding(session_id)
        files = session_files(self.settings.home, session_id)
        spec = SessionSpec(
            session_id=session_id,
            app=app,
            agent=agent,
            workspace=files.workspace,
            state_dir=files.state,
            harness_session_id=binding.harness_session_id,
            resume=False,
            model_env={},  # the model proxy's, given to each process as it opens (`_open`)
            project_env=env,
        )
        harness = self.apps.harness(app.harness)
        if await asyncio.to_thread(harness.has_transcript, spec):
            spec = replace(spec, resume=True)
        return spec

    async def _open(self, turn: LiveTurn) -> HarnessSession:
        """Open the session's harness when a start slot is free; while the turn waits for one
        its stream hears its place in line."""

        async def queued(position: int) -> None:
            status = {"subtype": "status", "status": "queued", "queue_position": position}
            await self.emit(turn.session_id, turn.turn_id, Event(ev.SYSTEM, status))

        async with self.starts.start(queued):
            return await self._start(turn)

    async def _start(self, turn: LiveTurn) -> HarnessSession:
        spec = await self._spec(turn.session_id, turn.app, turn.agent, turn.env)
        billing = turn.billing
        owner = (billing.organization_id, billing.project_id) if billing else (None, None)
        session, _ = await self._launch(spec, *owner)
        if session.harness_session_id != spec.harness_session_id:
            # Harnesses that name their own conversations (OpenCode) report the id on open.
            await self.repo.rebind(turn.session_id, session.harness_session_id)
        return session

    async def _launch(
        self,
        spec: SessionSpec,
        organization_id: int | None,
        project_id: int | None,
        *,
        bound: bool = True,
    ) -> tuple[SandboxedSession, Grant]:
        """Start a harness in the session's sandbox, with a model credential that only the
        model proxy knows (revoked, and the sandbox destroyed, when it closes). An unbound
        credential (a pooled harness's) is refused until a session adopts it."""
        session_id = spec.session_id
        harness = self.apps.harness(spec.app.harness)
        proxy = self.isolation.proxy
        # A pooled (unbound) harness starts in the background: at the lowest CPU weight until
        # a session adopts it, so refilling the pool never slows a live turn.
        handle = await self._sandbox(session_id, harness.kind, background=not bound)
        grant = proxy.grant(
            session_id,
            organization_id,
            project_id,
            admit=lambda: self._admit(session_id),
            on_refusal=lambda refusal: self._refused(session_id, refusal),
            bound=bound,
        )

        async def cleanup() -> None:
            proxy.revoke(grant)
            await handle.destroy()

        spec = replace(spec, model_env=proxy.harness_env(handle.model_url, grant), sandbox=handle)
        try:
            session = await harness.open(spec)
        except BaseException:
            await cleanup()
            raise
        return SandboxedSession(session, handle, cleanup), grant

    # --- the pool -------------------------------------------------------------------------------

    async def _prestart(self, demand: Demand) -> Pooled:
        """A harness for `demand`'s key, in the folders and sandbox of the session that will
        adopt it, which has not run a turn and cannot call the model yet."""
        session_id = new_id("sess")
        files = session_files(self.settings.home, session_id)
        who = demand.principal
        org, name = (who.organization_id, who.project_slug) if who else (None, None)
        async with self.apps.checkout(demand.pin, org, name) as app:
            await asyncio.to_thread(files.create_pooled, app.root)
        spec = SessionSpec(
            session_id=session_id,
            app=demand.app,
            agent=demand.agent,
            workspace=files.workspace,
            state_dir=files.state,
            harness_session_id=str(uuid.uuid4()),
            resume=False,
            model_env={},
            project_env=demand.env,
            pooled=True,
        )
        try:
            session, grant = await self._launch(spec, None, None, bound=False)
        except BaseException:
            await self._forget_files(session_id)
            raise
        return Pooled(session_id, session, grant, demand.key)

    async def _retire(self, pooled: Pooled) -> None:
        """A pooled harness nobody adopted: its process, sandbox, uid and folders go."""
        try:
            await pooled.session.close(force=True)
        finally:
            await self._forget_files(pooled.session_id)

    async def _forget_files(self, session_id: str) -> None:
        files = session_files(self.settings.home, session_id)
        await self.isolation.sandbox.forget(session_id, files.root)
        await asyncio.to_thread(files.destroy)

    async def adopt(
        self, pooled: Pooled, organization_id: int | None, project_id: int | None
    ) -> None:
        """A new session takes a pooled harness: its model calls are now the session's, and
        it is the session's warm harness (closed instead when no live slot is free: the first
        turn then starts one)."""
        pooled.grant.bind(organization_id, project_id)
        # Two small writes (the cgroup's CPU weight, the pool mark's removal) done in place:
        # a trip to a thread and back costs the session create more than they do.
        pooled.session.sandbox.foreground()
        session_files(self.settings.home, pooled.session_id).adopt()
        if not await self.live.adopt(pooled.session_id, pooled.key.config, pooled.session):
            await pooled.session.close(force=True)

    def retire_later(self, pooled: Pooled) -> None:
        """A pooled harness taken for a session that was not created after all."""
        self._track(self._retire(pooled))

    async def check_budget(self, billing: Billing) -> None:
        """Raise `BudgetExhausted` when the payer may not spend more: asked before a turn runs
        and before each of its model calls. Usage still in the outbox counts as spent."""
        if self.metering is not None:
            await self.metering.check(
                billing, lambda: self.repo.pending_usage(billing.organization_id)
            )

    def _refused(self, session_id: str, refusal: Refusal) -> None:
        """The proxy refused a model call of this session for good (the provider rejected the
        organization's own key): the running turn ends with that error."""
        turn = self._turns.get(session_id)
        if turn is not None and turn.failure is None:
            self._fail(turn, ev.error_event(refusal.message, refusal.kind))

    async def _admit(self, session_id: str) -> Refusal | Usage:
        """A model call of this session's harness may go ahead during the session's turns only
        (a process the agent left running between turns must not call the model unmetered), and
        only while the turn's payer has budget left. An admitted call's usage counts toward the
        turn that admitted it."""
        turn = self._turns.get(session_id)
        if turn is None or turn.failure is not None:
            return Refusal(409, "permission_error", "no turn is running in this session")
        if turn.billing is not None:
            # The turn's earlier calls are in the outbox, so the check counts them.
            await asyncio.gather(*turn.writes)
            try:
                await self.check_budget(turn.billing)
            except BudgetExhausted as exc:
                self._fail(turn, ev.error_event(exc.message, exc.code, **exc.extra))
                return Refusal(402, exc.code, exc.message)
        turn.open_calls += 1
        turn.calls_ended.clear()
        return functools.partial(self._metered, turn)

    def _fail(self, turn: LiveTurn, error: Event) -> None:
        """End a running turn with `error` (its harness is stopped; the turn ends `failed`)."""
        if turn.failure is not None:
            return
        turn.failure = error
        if turn.task is not None:
            turn.task.cancel()

    def _metered(self, turn: LiveTurn, usage: CallUsage) -> None:
        """A model call the turn admitted finished: it counts toward the turn's usage, and its
        usage event goes to the outbox at once (shipped when the turn ends, see `_settle`)."""
        turn.open_calls -= 1
        if turn.open_calls == 0:
            turn.calls_ended.set()
        turn.calls.append(usage)
        if turn.billing is not None:
            row = usage_row(
                turn.billing, turn.session_id, turn.turn_id, usage.as_dict(), self.repo.clock
            )
            turn.writes.append(self._track(self._record(row)))

    async def _record(self, row: UsageOutbox) -> None:
        await self.repo.add_usage(row)

    async def transcript(self, row: SessionRow, app: HarnessApp) -> list[dict[str, Any]]:
        """The session's conversation as its harness stored it (nothing before its first
        turn)."""
        agent = app.agent(row.current_agent)
        spec = await self._spec(row.id, app, agent, {})
        if not spec.resume:
            return []
        harness = self.apps.harness(app.harness)
        # Reading is done in the session's sandbox too: a reader (OpenCode's server) runs on
        # files the agent controls, and what it reads may be a link the agent planted.
        handle = await self._sandbox(row.id, harness.kind)
        try:
            return await harness.transcript(replace(spec, sandbox=handle))
        finally:
            await handle.destroy()

    async def _sandbox(
        self, session_id: str, kind: str, *, background: bool = False
    ) -> SandboxHandle:
        files = session_files(self.settings.home, session_id)
        writable = (files.workspace, files.state)
        request = SandboxRequest(
            session_id,
            files.root,
            writable,
            files.workspace,
            serves=kind == OPENCODE,
            background=background,
        )
        return await self.isolation.sandbox.prepare(request)

    async def _finish(
        self, session_id: str, turn_id: str, done: Event, turn: LiveTurn | None = None
    ) -> None:
        if turn is not None and turn.open_calls:
            # The harness has had its answer, but the proxy may still be reading the call's
            # usage from the end of the stream: the turn's usage waits for it (a call that
            # failed upstream never reports, hence the bound).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(turn.calls_ended.wait(), CALL_SETTLE)
        if turn is not None and turn.calls:
            # Metered by the proxy from the provider's own answers, not as the harness says.
            done = Event(ev.DONE, {**done.data, "usage": turn_usage(turn.calls)})
        # The client learns the turn ended first, and may start the next one at once (no await
        # between the `done` and freeing the slot); the bookkeeping follows.
        await self.emit(session_id, turn_id, done)
        if turn is not None and self._turns.get(session_id) is turn:
            del self._turns[session_id]
        if self.holds(session_id):  # else the session's new owner settles the turn
            self._settling[session_id] += 1
            try:
                await self._settle(session_id, turn_id, done, turn)
            finally:
                self._settling[session_id] -= 1
                if not self._settling[session_id]:
                    del self._settling[session_id]

    async def _settle(
        self, session_id: str, turn_id: str, done: Event, turn: LiveTurn | None = None
    ) -> None:
        """A finished turn's row and usage, after its `done` is in the log. The proxy wrote a
        usage event per model call as each ended; a harness whose calls it did not see (the
        in-process `FakeHarness`) is billed the usage it reported. The turn's usage is shipped
        now, in one batch: shipping while the turn ran would slow it (the outbox counts toward
        budget checks meanwhile, and the shipper's interval ships a long turn's calls)."""
        usage = done.data.get("usage") or {}
        record = None
        if turn is not None and turn.billing is not None and not turn.calls and _spent(usage):
            record = usage_row(turn.billing, session_id, turn_id, usage, self.repo.clock)
        state = ended_state(done)
        if turn is not None:
            turn.state = state
        await self.repo.finish_turn(session_id, turn_id, state, done.data.get("usage"), record)
        if turn is not None and (turn.writes or record is not None) and self.metering is not None:
            await asyncio.gather(*turn.writes, return_exceptions=True)  # the calls' rows
            self.metering.recorded()
        await self.events.prune(session_id, self.settings.max_events_per_session)

    # --- stopping a turn ----------------------------------------------------------------------

    async def interrupt(self, session_id: str) -> str:
        """Stop the session's running turn, paused or not. The harness is asked to stop (its
        process stays warm); one that does not within `INTERRUPT_GRACE` is killed. Either way
        the turn ends `cancelled` and the session takes the next message."""
        turn = self._turns.get(session_id)
        if turn is None or turn.task is None:
            raise NoTurnRunning("no turn is running in this session")
        turn.cancelled.set()
        self.approvals.abort(session_id)
        if turn.harness is not None:
            try:
                await asyncio.wait_for(turn.harness.interrupt(), INTERRUPT_GRACE / 2)
            except Exception as exc:  # a dead or stuck harness: the kill below handles it
                log.info("interrupting the harness of %s failed: %s", session_id, exc)
        _, pending = await asyncio.wait({turn.task}, timeout=INTERRUPT_GRACE)
        if pending:
            turn.task.cancel()
        await asyncio.gather(turn.task, return_exceptions=True)
        return turn.turn_id

    async def end(self, session_id: str) -> None:
        """The session is ending: stop its turn, close its harness."""
        turn = self._turns.get(session_id)
        if turn is not None and turn.task is not None:
            turn.cancelled.set()
            turn.task.cancel()
            await asyncio.gather(turn.task, return_exceptions=True)
        await self.live.discard(session_id, force=True)
        root = session_files(self.settings.home, session_id).root
        await self.isolation.sandbox.forget(session_id, root)


def _spent(usage: dict[str, Any]) -> bool:
    return any(usage.get(name) for name in ("input_tokens", "output_tokens"))
