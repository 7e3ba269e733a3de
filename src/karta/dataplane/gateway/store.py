"""Every SQL statement of the gateway: event ids seen (idempotency), the delivery outbox, the
turns whose answers go back, and the trust between organizations. All of it is in the
database, so any replica may take any of it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker

from karta.core.clock import Clock
from karta.dataplane.runtime.lifecycle import LIVE_TURN_STATES
from karta.dataplane.store.models import (
    GatewayEventRow,
    GatewayOutbox,
    GatewayReply,
    GatewayTrust,
    TurnRow,
)


class GatewayStore:
    def __init__(self, db: async_sessionmaker, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    # --- idempotency ---------------------------------------------------------------------------

    async def claim(self, scope: str, event_id: str) -> tuple[bool, dict[str, Any] | None]:
        """Take an event id: (True, None) for its first submission, else (False, the answer
        it got, or None while that first submission is still being handled)."""
        try:
            async with self.db() as db, db.begin():
                db.add(GatewayEventRow(scope=scope, event_id=event_id, created_at=self.clock.now()))
            return True, None
        except IntegrityError:
            async with self.db() as db:
                seen = await db.get(GatewayEventRow, (scope, event_id))
            return False, seen.result if seen is not None else None

    async def settle(self, scope: str, event_id: str, result: dict[str, Any]) -> None:
        async with self.db() as db, db.begin():
            await db.execute(
                update(GatewayEventRow)
                .where(GatewayEventRow.scope == scope, GatewayEventRow.event_id == event_id)
                .values(result=result)
            )

    async def release(self, scope: str, event_id: str) -> None:
        """The first submission failed: the id is free for a retry."""
        async with self.db() as db, db.begin():
            await db.execute(
                delete(GatewayEventRow).where(
                    GatewayEventRow.scope == scope, GatewayEventRow.event_id == event_id
                )
            )

    # --- the outbox ----------------------------------------------------------------------------

    async def enqueue(self, rows: Sequence[GatewayOutbox]) -> None:
        async with self.db() as db, db.begin():
            db.add_all(rows)

    async def due(self, limit: int) -> Sequence[GatewayOutbox]:
        async with self.db() as db:
            query = (
                select(GatewayOutbox)
                .where(GatewayOutbox.next_attempt_at <= self.clock.now())
                .order_by(GatewayOutbox.next_attempt_at, GatewayOutbox.created_at)
                .limit(limit)
            )
            return (await db.scalars(query)).all()

    async def lease(self, row_id: str, until: datetime) -> bool:
        """Take a due delivery for an attempt (no other replica takes it before `until`)."""
        async with self.db() as db, db.begin():
            result = await db.execute(
                update(GatewayOutbox)
                .where(
                    GatewayOutbox.id == row_id, GatewayOutbox.next_attempt_at <= self.clock.now()
                )
                .values(next_attempt_at=until)
            )
        return bool(getattr(result, "rowcount", 0))

    async def failed(self, row_id: str, attempts: int, retry_at: datetime, error: str) -> None:
        async with self.db() as db, db.begin():
            await db.execute(
                update(GatewayOutbox)
                .where(GatewayOutbox.id == row_id)
                .values(attempts=attempts, next_attempt_at=retry_at, last_error=error[:2000])
            )

    async def done(self, row_id: str) -> None:
        async with self.db() as db, db.begin():
            await db.execute(delete(GatewayOutbox).where(GatewayOutbox.id == row_id))

    # --- answers to send back ------------------------------------------------------------------

    async def expect_reply(self, reply: GatewayReply) -> None:
        async with self.db() as db, db.begin():
            db.add(reply)

    async def finished_replies(self, limit: int) -> Sequence[tuple[GatewayReply, TurnRow]]:
        """Turns the gateway started that have ended, with their rows."""
        async with self.db() as db:
            query = (
                select(GatewayReply, TurnRow)
                .join(TurnRow, TurnRow.id == GatewayReply.turn_id)
                .where(TurnRow.status.not_in([str(s) for s in LIVE_TURN_STATES]))
                .order_by(GatewayReply.created_at)
                .limit(limit)
            )
            return [(reply, turn) for reply, turn in (await db.execute(query)).all()]

    async def replied(self, turn_id: str, deliveries: Sequence[GatewayOutbox]) -> bool:
        """The answer of a turn leaves as these deliveries, once: False if another replica
        sent it first."""
        async with self.db() as db, db.begin():
            result = await db.execute(delete(GatewayReply).where(GatewayReply.turn_id == turn_id))
            if not getattr(result, "rowcount", 0):
                return False
            db.add_all(deliveries)
        return True

    # --- trust between organizations -----------------------------------------------------------

    async def trusts(self, organization_id: int) -> list[int]:
        async with self.db() as db:
            query = (
                select(GatewayTrust.peer_organization_id)
                .where(GatewayTrust.organization_id == organization_id)
                .order_by(GatewayTrust.peer_organization_id)
            )
            return list((await db.scalars(query)).all())

    async def trust(self, organization_id: int, peer: int) -> None:
        try:
            async with self.db() as db, db.begin():
                db.add(
                    GatewayTrust(
                        organization_id=organization_id,
                        peer_organization_id=peer,
                        created_at=self.clock.now(),
                    )
                )
        except IntegrityError:
            pass  # trusted already

    async def distrust(self, organization_id: int, peer: int) -> None:
        async with self.db() as db, db.begin():
            await db.execute(
                delete(GatewayTrust).where(
                    GatewayTrust.organization_id == organization_id,
                    GatewayTrust.peer_organization_id == peer,
                )
            )

    async def mutual(self, a: int, b: int) -> bool:
        """Whether the two organizations each allowed the other."""
        async with self.db() as db:
            rows = await db.scalars(
                select(GatewayTrust.organization_id).where(
                    ((GatewayTrust.organization_id == a) & (GatewayTrust.peer_organization_id == b))
                    | (
                        (GatewayTrust.organization_id == b)
                        & (GatewayTrust.peer_organization_id == a)
                    )
                )
            )
            return set(rows.all()) == {a, b}
