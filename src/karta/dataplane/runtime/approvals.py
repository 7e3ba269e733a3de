"""Approvals pause the live turn: the harness's permission request becomes an `input_required`
event and a durable pending approval; the turn waits until a decision arrives or it expires.

An approval moves only along `lifecycle.APPROVAL_TRANSITIONS`: pending → approved_once |
approved_session | denied | expired | aborted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from karta.core import events as ev
from karta.core.errors import InputNotFound, InputNotPending
from karta.core.events import Event
from karta.core.ids import new_id
from karta.dataplane.harness.base import ApprovalAnswer, Emit, ToolRequest, Verdict
from karta.dataplane.runtime.lifecycle import ApprovalState, Decision
from karta.dataplane.runtime.repository import Repository
from karta.dataplane.store.models import ApprovalRow, AuditOutbox

OPTIONS = [str(d) for d in Decision]
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
        "options": OPTIONS,
        "expires_at": row.expires_at.isoformat(),
    }


class ApprovalBroker:
    def __init__(self, repository: Repository, ttl: float) -> None:
        self._repo = repository
        self._clock = repository.clock
        self.ttl = ttl
        # A live turn's wait, by request id: resolved with the decision, or None when the turn
        # was interrupted while it waited.
        self._waiting: dict[str, asyncio.Future[Decision | None]] = {}
        self._waiting_in: dict[str, str] = {}  # session id → request id a live turn waits on

    async def request(
        self,
        session_id: str,
        turn_id: str,
        request: ToolRequest,
        emit: Emit,
        workspace: Path | None = None,
        on_pause: Callable[[], Awaitable[None]] | None = None,
    ) -> ApprovalAnswer:
        """Ask whoever decides for the session; returns once they did or the request expired.
        `on_pause` runs when the turn is about to wait (not when the session's mode answers at
        once). Cancelling the waiting turn aborts the request."""
        if await self._repo.permission_mode(session_id) == Decision.APPROVE_SESSION:
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
            status=str(ApprovalState.PENDING),
            created_at=self._clock.now(),
            expires_at=self._clock.now() + timedelta(seconds=self.ttl),
        )
        if on_pause is not None:
            await on_pause()
        await self._repo.add_approval(row)
        future: asyncio.Future[Decision | None] = asyncio.get_running_loop().create_future()
        self._waiting[row.request_id] = future
        self._waiting_in[session_id] = row.request_id
        data = {**public_approval(row), "tool_use_id": request.tool_use_id}
        await emit(Event(ev.INPUT_REQUIRED, data))
        try:
            decision = await self._clock.wait_for(future, self.ttl)
        except asyncio.CancelledError:
            await self._repo.settle_approval(row.request_id, ApprovalState.ABORTED)
            raise
        except TimeoutError:
            await self._repo.settle_approval(row.request_id, ApprovalState.EXPIRED)
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
        if decision is None:
            await self._repo.settle_approval(row.request_id, ApprovalState.ABORTED)
            return ApprovalAnswer(Verdict.DENY, "The turn was interrupted.")
        if not decision.allows:
            return ApprovalAnswer(Verdict.DENY, "The user denied this action.")
        return ApprovalAnswer(Verdict.ALLOW)

    async def decide(
        self,
        session_id: str,
        request_id: str,
        decision: Decision,
        audit: Callable[[ApprovalRow], AuditOutbox] | None = None,
    ) -> str:
        """Resolve a pending approval and return the id of the turn waiting on it. `audit` makes
        the row that tells the audit log who decided."""
        row = await self._repo.approval(request_id)
        if row is None or row.session_id != session_id:
            raise InputNotFound(f"no input request {request_id!r} in this session")
        if row.status != ApprovalState.PENDING:
            raise InputNotPending(
                f"input request {request_id!r} is no longer pending ({row.status})",
                status=row.status,
            )
        future = self._waiting.get(request_id)
        if future is None or future.done():
            # Durable but orphaned: the turn that asked is gone (e.g. the server restarted).
            await self._repo.settle_approval(request_id, ApprovalState.ABORTED)
            raise InputNotPending(
                f"input request {request_id!r} belongs to a turn that ended", status="aborted"
            )
        record = audit(row) if audit is not None else None
        if not await self._repo.settle_approval(request_id, decision.state, record):
            raise InputNotPending(f"input request {request_id!r} was decided concurrently")
        if decision is Decision.APPROVE_SESSION:
            await self._repo.set_permission_mode(session_id, Decision.APPROVE_SESSION)
        future.set_result(decision)
        return row.turn_id

    def abort(self, session_id: str) -> None:
        """The session's turn is being interrupted: its pending approval is aborted."""
        request_id = self._waiting_in.get(session_id)
        future = self._waiting.get(request_id) if request_id else None
        if future is not None and not future.done():
            future.set_result(None)

    def waiting(self, session_id: str) -> str | None:
        """The request id a live turn of this session is waiting on (no database read: every
        pending approval belongs to a live turn, since start-up aborts the orphans)."""
        return self._waiting_in.get(session_id)
