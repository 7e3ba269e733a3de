"""Approvals pause the live turn: the harness's permission request becomes an `input_required`
event and a durable pending approval; the turn waits until a decision arrives or it expires."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import async_sessionmaker

from karta import events as ev
from karta.errors import InputNotFound, InputNotPending
from karta.events import Event
from karta.harness.base import ApprovalAnswer, ToolRequest, Verdict
from karta.ids import new_id
from karta.store.models import ApprovalRow, AuditOutbox, SessionRow, utcnow

APPROVE_ONCE = "approve_once"
APPROVE_SESSION = "approve_session"
DENY = "deny"
DECISIONS = (APPROVE_ONCE, APPROVE_SESSION, DENY)
TARGET_KEYS = (
    "file_path",
    "filePath",
    "filepath",
    "path",
    "notebook_path",
    "command",
    "cmd",
    "url",
    "pattern",
)

Emit = Callable[[Event], Awaitable[Event]]


def target_of(tool_input: dict[str, Any], workspace: Path | None = None) -> str | None:
    """What the tool acts on, shown relative to the session's workspace when inside it."""
    for key in TARGET_KEYS:
        value = tool_input.get(key)
        if isinstance(value, str) and value:
            if workspace is not None and value.startswith(f"{workspace}/"):
                return value[len(str(workspace)) + 1 :]
            return value
    return None


def public_approval(row: ApprovalRow) -> dict[str, Any]:
    return {
        "request_id": row.request_id,
        "kind": row.kind,
        "tool": row.tool,
        "target": row.target,
        "input": row.tool_input,
        "message": row.message,
        "options": list(DECISIONS),
        "expires_at": row.expires_at.isoformat(),
    }


class ApprovalBroker:
    def __init__(self, db: async_sessionmaker, ttl: float) -> None:
        self._db = db
        self.ttl = ttl
        self._waiting: dict[str, asyncio.Future[str]] = {}
        self._waiting_in: dict[str, str] = {}  # session id → request id a live turn waits on

    async def request(
        self,
        session_id: str,
        turn_id: str,
        request: ToolRequest,
        emit: Emit,
        workspace: Path | None = None,
    ) -> ApprovalAnswer:
        async with self._db() as db:
            mode = await db.scalar(
                select(SessionRow.permission_mode).where(SessionRow.id == session_id)
            )
        if mode == APPROVE_SESSION:
            return ApprovalAnswer(Verdict.ALLOW)
        target = target_of(request.input, workspace)
        row = ApprovalRow(
            request_id=new_id("req"),
            session_id=session_id,
            turn_id=turn_id,
            kind="tool_permission",
            tool=request.tool,
            target=target,
            tool_input=request.input,
            message=f"Allow {request.tool}" + (f" on {target}?" if target else "?"),
            expires_at=utcnow() + timedelta(seconds=self.ttl),
        )
        async with self._db() as db, db.begin():
            db.add(row)
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._waiting[row.request_id] = future
        self._waiting_in[session_id] = row.request_id
        data = public_approval(row)
        data["tool_use_id"] = request.tool_use_id
        await emit(Event(ev.INPUT_REQUIRED, data))
        try:
            decision = await asyncio.wait_for(future, self.ttl)
        except asyncio.CancelledError:
            await self._settle(row.request_id, "aborted")
            raise
        except TimeoutError:
            await self._settle(row.request_id, "expired")
            await emit(
                ev.error_event(
                    "the approval expired without a decision",
                    "approval_expired",
                    request_id=row.request_id,
                )
            )
            return ApprovalAnswer(Verdict.DENY, "The approval request expired without a decision.")
        finally:
            self._waiting.pop(row.request_id, None)
            self._waiting_in.pop(session_id, None)
        if decision == DENY:
            return ApprovalAnswer(Verdict.DENY, "The user denied this action.")
        return ApprovalAnswer(Verdict.ALLOW)

    async def _settle(
        self, request_id: str, status: str, record: AuditOutbox | None = None
    ) -> bool:
        """Move a pending approval to `status`; False if it was no longer pending. `record`
        (an outbox row) commits with the decision or not at all."""
        async with self._db() as db, db.begin():
            result = await db.execute(
                update(ApprovalRow)
                .where(ApprovalRow.request_id == request_id, ApprovalRow.status == "pending")
                .values(status=status, decided_at=utcnow())
            )
            if result.rowcount and record is not None:
                db.add(record)
        return bool(result.rowcount)

    async def decide(
        self,
        session_id: str,
        request_id: str,
        decision: str,
        audit: Callable[[ApprovalRow], AuditOutbox] | None = None,
    ) -> str:
        """Resolve a pending approval and return the id of the turn waiting on it. `audit` makes
        the row that tells the audit log who decided."""
        async with self._db() as db:
            row = await db.get(ApprovalRow, request_id)
        if row is None or row.session_id != session_id:
            raise InputNotFound(f"no input request {request_id!r} in this session")
        if row.status != "pending":
            raise InputNotPending(
                f"input request {request_id!r} is no longer pending ({row.status})",
                status=row.status,
            )
        future = self._waiting.get(request_id)
        if future is None or future.done():
            # Durable but orphaned: the turn that asked is gone (e.g. the server restarted).
            await self._settle(request_id, "aborted")
            raise InputNotPending(
                f"input request {request_id!r} belongs to a turn that ended", status="aborted"
            )
        record = audit(row) if audit is not None else None
        if not await self._settle(request_id, decision, record):
            raise InputNotPending(f"input request {request_id!r} was decided concurrently")
        if decision == APPROVE_SESSION:
            async with self._db() as db, db.begin():
                await db.execute(
                    update(SessionRow)
                    .where(SessionRow.id == session_id)
                    .values(permission_mode=APPROVE_SESSION)
                )
        future.set_result(decision)
        return row.turn_id

    def waiting(self, session_id: str) -> str | None:
        """The request id a live turn of this session is waiting on (no database read: every
        pending approval belongs to a live turn, since start-up aborts the orphans)."""
        return self._waiting_in.get(session_id)

    async def pending(self, session_id: str) -> ApprovalRow | None:
        async with self._db() as db:
            return await db.scalar(
                select(ApprovalRow).where(
                    ApprovalRow.session_id == session_id, ApprovalRow.status == "pending"
                )
            )

    async def abort_orphans(self) -> list[ApprovalRow]:
        """At start-up: no turn survives a restart, so every pending approval is aborted."""
        async with self._db() as db, db.begin():
            rows = list(
                (await db.scalars(select(ApprovalRow).where(ApprovalRow.status == "pending"))).all()
            )
            for row in rows:
                row.status = "aborted"
                row.decided_at = utcnow()
        return rows
