"""Every SQL statement of the runtime: session handles, harness bindings, turns, approvals and
the outbox rows that commit with them. The turn pipeline, the approval broker and the session
handle speak to the database only through this class.

Tenancy is not decided here: `SessionHandle`s are made only for sessions their caller owns
(`Runtime.session`), and every method below takes ids the handle already vouched for.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, exists, func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker

from karta.core.clock import SYSTEM, Clock
from karta.core.internal_api import PendingUsage
from karta.dataplane.principal import END_USER_KEYS
from karta.dataplane.runtime.lifecycle import LIVE_TURN_STATES, ApprovalState, TurnState, advance
from karta.dataplane.runtime.queries import SessionFilter
from karta.dataplane.store.models import (
    AdapterResponse,
    ApprovalRow,
    AuditOutbox,
    HarnessBinding,
    ParticipantRow,
    SessionRow,
    TurnRow,
    UsageOutbox,
)


class Repository:
    def __init__(self, db: async_sessionmaker, clock: Clock = SYSTEM) -> None:
        self.db = db
        self.clock = clock

    async def ping(self) -> str | None:
        """None when the database answers a trivial query, else the error."""
        try:
            async with self.db() as db:
                await db.execute(text("SELECT 1"))
        except Exception as exc:  # any failure means "not ready"; say which
            return f"{type(exc).__name__}: {exc}"
        return None

    # --- sessions ------------------------------------------------------------------------------

    async def session(self, session_id: str) -> SessionRow | None:
        async with self.db() as db:
            return await db.get(SessionRow, session_id)

    async def add_session(self, row: SessionRow, binding: HarnessBinding) -> None:
        async with self.db() as db, db.begin():
            db.add(row)
            await db.flush()
            db.add(binding)

    async def end_session(self, session_id: str) -> None:
        await self._touch(session_id, status="ended")

    async def _touch(self, session_id: str, **values: Any) -> None:
        async with self.db() as db, db.begin():
            await db.execute(
                update(SessionRow)
                .where(SessionRow.id == session_id)
                .values(updated_at=self.clock.now(), **values)
            )

    async def set_permission_mode(self, session_id: str, mode: str) -> None:
        await self._touch(session_id, permission_mode=mode)

    async def permission_mode(self, session_id: str) -> str | None:
        async with self.db() as db:
            return await db.scalar(
                select(SessionRow.permission_mode).where(SessionRow.id == session_id)
            )

    async def list_sessions(self, where: SessionFilter, limit: int) -> Sequence[SessionRow]:
        query = self._filtered(select(SessionRow), where)
        query = query.order_by(SessionRow.created_at.desc(), SessionRow.id.desc()).limit(limit)
        async with self.db() as db:
            return (await db.scalars(query)).all()

    def _filtered(self, query: Select[Any], where: SessionFilter) -> Select[Any]:
        if where.organization_id is not None:
            query = query.where(SessionRow.organization_id == where.organization_id)
        if where.project_id is not None:
            query = query.where(SessionRow.project_id == where.project_id)
        if where.status is not None:
            query = query.where(SessionRow.status == where.status)
        if where.agent is not None:
            query = query.where(SessionRow.current_agent == where.agent)
        if where.active is not None:
            live = exists().where(
                TurnRow.session_id == SessionRow.id,
                TurnRow.status.in_([str(s) for s in LIVE_TURN_STATES]),
            )
            query = query.where(live if where.active else ~live)
        if where.before is not None:
            created, last_id = where.before
            query = query.where(
                (SessionRow.created_at < created)
                | ((SessionRow.created_at == created) & (SessionRow.id < last_id))
            )
        if where.end_user is not None or where.anonymous_only:
            query = query.where(
                _end_user() == where.end_user if where.end_user else _end_user().is_(None)
            )
        for key, value in where.metadata:
            query = query.where(SessionRow.meta[key].as_string() == value)
        return query

    # --- participants ------------------------------------------------------------------------

    async def participants(self, session_id: str) -> Sequence[ParticipantRow]:
        async with self.db() as db:
            query = (
                select(ParticipantRow)
                .where(ParticipantRow.session_id == session_id)
                .order_by(ParticipantRow.joined_at, ParticipantRow.participant_id)
            )
            return (await db.scalars(query)).all()

    async def participant(self, session_id: str, participant_id: str) -> ParticipantRow | None:
        async with self.db() as db:
            return await db.get(ParticipantRow, (session_id, participant_id))

    async def join(self, row: ParticipantRow) -> tuple[ParticipantRow, bool]:
        """Add a participant, or find the one with its id (back in the session if it had
        left, at the place `row` names if it names one). Returns it and whether it is new."""
        for _ in range(2):  # a concurrent join of the same id wins the insert: take its row
            try:
                async with self.db() as db, db.begin():
                    key = (row.session_id, row.participant_id)
                    found = await db.get(ParticipantRow, key, with_for_update=True)
                    if found is None:
                        row.joined_at = self.clock.now()
                        db.add(row)
                        await db.flush()
                        return row, True
                    found.left_at = None
                    for name in ("gateway_url", "linked_session_id", "project"):
                        if getattr(row, name) is not None:
                            setattr(found, name, getattr(row, name))
                    return found, False
            except IntegrityError:
                continue
        raise AssertionError("a participant row neither inserts nor reads")

    async def leave(self, session_id: str, participant_id: str) -> ParticipantRow | None:
        async with self.db() as db, db.begin():
            found = await db.get(ParticipantRow, (session_id, participant_id), with_for_update=True)
            if found is not None and found.left_at is None:
                found.left_at = self.clock.now()
            return found

    # --- bindings ----------------------------------------------------------------------------

    async def binding(self, session_id: str) -> HarnessBinding:
        async with self.db() as db:
            binding = await db.get(HarnessBinding, session_id)
        assert binding is not None, "every session is created with a harness binding"
        return binding

    async def rebind(self, session_id: str, harness_session_id: str) -> None:
        async with self.db() as db, db.begin():
            await db.execute(
                update(HarnessBinding)
                .where(HarnessBinding.session_id == session_id)
                .values(harness_session_id=harness_session_id)
            )

    # --- turns -------------------------------------------------------------------------------

    async def start_turn(
        self,
        session_id: str,
        turn_id: str,
        agent: str,
        first_seq: int,
        replica_id: str,
    ) -> None:
        async with self.db() as db, db.begin():
            db.add(
                TurnRow(
                    id=turn_id,
                    session_id=session_id,
                    agent=agent,
                    status=str(TurnState.RUNNING),
                    first_seq=first_seq,
                    replica_id=replica_id,
                )
            )
            await db.flush()
            await db.execute(
                update(SessionRow)
                .where(SessionRow.id == session_id)
                .values(
                    current_agent=agent,
                    turn_count=SessionRow.turn_count + 1,
                    updated_at=self.clock.now(),
                )
            )

    async def move_turn(self, turn_id: str, target: TurnState) -> None:
        """A live turn's pause or resumption (the lifecycle checks the move)."""
        async with self.db() as db, db.begin():
            row = await db.get(TurnRow, turn_id, with_for_update=True)
            assert row is not None
            row.status = str(advance(TurnState(row.status), target))

    async def finish_turn(
        self,
        session_id: str,
        turn_id: str,
        state: TurnState,
        usage: dict[str, Any] | None,
        usage_row: UsageOutbox | None,
    ) -> None:
        """The turn's end state and its usage (with its usage event, for a harness whose model
        calls the proxy did not meter), in one transaction. A turn may be settled twice, in the same
        state: by its owner, and by a new owner that found it live a moment before."""
        now = self.clock.now()
        async with self.db() as db, db.begin():
            row = await db.get(TurnRow, turn_id, with_for_update=True)
            assert row is not None
            if row.status != str(state):
                row.status = str(advance(TurnState(row.status), state))
            row.usage = usage
            row.finished_at = now
            if usage_row is not None:
                db.add(usage_row)
            await db.execute(
                update(SessionRow).where(SessionRow.id == session_id).values(updated_at=now)
            )

    async def add_usage(self, row: UsageOutbox) -> None:
        async with self.db() as db, db.begin():
            db.add(row)

    async def pending_usage(self, organization_id: int) -> list[PendingUsage]:
        """The organization's usage still in the outbox, summed per key, model, provider and
        key owner."""
        names = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
        groups = (
            UsageOutbox.api_key_id,
            UsageOutbox.model,
            UsageOutbox.provider,
            UsageOutbox.key_owner,
        )
        query = (
            select(*groups, *(func.sum(getattr(UsageOutbox, name)) for name in names))
            .where(UsageOutbox.organization_id == organization_id)
            .group_by(*groups)
        )
        async with self.db() as db:
            rows = (await db.execute(query)).tuples().all()
        # Sums come back as Decimal on PostgreSQL.
        return [
            PendingUsage(
                api_key_id=key,
                model=model,
                provider=provider,
                key_owner=owner,
                **{n: int(v) for n, v in zip(names, sums, strict=True)},
            )
            for key, model, provider, owner, *sums in rows
        ]

    async def live_turns(self, session_id: str) -> Sequence[TurnRow]:
        """The session's turns the database says are running or awaiting input."""
        async with self.db() as db:
            query = select(TurnRow).where(
                TurnRow.session_id == session_id,
                TurnRow.status.in_([str(s) for s in LIVE_TURN_STATES]),
            )
            return (await db.scalars(query)).all()

    async def sessions_with_live_turns(self) -> list[str]:
        async with self.db() as db:
            query = select(TurnRow.session_id).where(
                TurnRow.status.in_([str(s) for s in LIVE_TURN_STATES])
            )
            return list(dict.fromkeys((await db.scalars(query)).all()))

    # --- approvals ---------------------------------------------------------------------------

    async def add_approval(self, row: ApprovalRow) -> None:
        async with self.db() as db, db.begin():
            db.add(row)

    async def approval(self, request_id: str) -> ApprovalRow | None:
        async with self.db() as db:
            return await db.get(ApprovalRow, request_id)

    async def pending_approval(self, session_id: str) -> ApprovalRow | None:
        async with self.db() as db:
            return await db.scalar(
                select(ApprovalRow).where(
                    ApprovalRow.session_id == session_id,
                    ApprovalRow.status == str(ApprovalState.PENDING),
                )
            )

    async def settle_approval(
        self, request_id: str, state: ApprovalState, record: AuditOutbox | None = None
    ) -> bool:
        """Move a pending approval to `state`; False if it was no longer pending. `record`
        (an outbox row) commits with the decision or not at all."""
        advance(ApprovalState.PENDING, state)
        async with self.db() as db, db.begin():
            result = await db.execute(
                update(ApprovalRow)
                .where(
                    ApprovalRow.request_id == request_id,
                    ApprovalRow.status == str(ApprovalState.PENDING),
                )
                .values(status=str(state), decided_at=self.clock.now())
            )
            settled = bool(getattr(result, "rowcount", 0))
            if settled and record is not None:
                db.add(record)
        return settled

    async def abort_pending_approvals(self, session_id: str) -> int:
        """The session's turn did not survive its owner: its pending approvals are aborted."""
        async with self.db() as db, db.begin():
            result = await db.execute(
                update(ApprovalRow)
                .where(
                    ApprovalRow.session_id == session_id,
                    ApprovalRow.status == str(ApprovalState.PENDING),
                )
                .values(status=str(ApprovalState.ABORTED), decided_at=self.clock.now())
            )
        return int(getattr(result, "rowcount", 0))

    # --- adapter responses -------------------------------------------------------------------

    async def remember_response(self, response_id: str, session_id: str, turn_id: str) -> None:
        async with self.db() as db, db.begin():
            db.add(AdapterResponse(id=response_id, session_id=session_id, turn_id=turn_id))

    async def session_of_response(self, response_id: str) -> str | None:
        async with self.db() as db:
            row = await db.get(AdapterResponse, response_id)
        return row.session_id if row is not None else None


def _end_user() -> Any:
    """The end user a session belongs to, in SQL (as `principal.end_user` reads metadata)."""
    return func.coalesce(*(SessionRow.meta[k].as_string() for k in END_USER_KEYS))
