"""Metering against the control plane: a budget reservation before each turn, and the shipper
that drains the outboxes — usage to `POST /internal/usage/events`, approvals decided to
`POST /internal/audit/events`.

The outbox row is written with the turn's final state (`Runtime._finish`), so usage survives a
control-plane outage and a data-plane restart alike. The shipper sends batches every `interval`
seconds, and at once when a turn finishes; it deletes rows only after a 2xx. Event ids are
idempotent on the control plane, so a batch resent after a lost answer counts once.

Reservations fail open only as far as the caller's cached principal allows: a turn is refused
(402) when the principal says the budget is spent, and while the control plane is unreachable a
turn whose principal says `budget_ok` is admitted on that word alone. Overspend during an outage
is therefore bounded by the turns admitted while it lasts (within the key cache's stale grace);
the turn's reservation id still travels with its usage event, which the control plane settles.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import async_sessionmaker

from karta.core import internal_api as api
from karta.core.clock import SYSTEM, Clock
from karta.core.ids import new_id
from karta.dataplane.control.client import (
    ControlPlaneClient,
    ControlPlaneUnavailable,
    EventsRefused,
)
from karta.dataplane.principal import Principal
from karta.dataplane.store.models import AuditOutbox, UsageOutbox

log = logging.getLogger(__name__)

BATCH = 100
INTERVAL = 1.0


@dataclass(frozen=True)
class Outbox:
    """A table of rows waiting for the control plane, the internal route that takes them, and
    the batch of the contract they travel in. The tables' columns are named after the events'
    fields, so a row converts by attribute."""

    table: type[UsageOutbox] | type[AuditOutbox]
    path: str
    batch: type[api.UsageBatch] | type[api.ReportedAuditBatch]

    def body(self, rows: list[Any]) -> api.UsageBatch | api.ReportedAuditBatch:
        """The request for `rows`. A row that breaks the contract is refused here, as the
        control plane would refuse it."""
        try:
            return self.batch.model_validate({"events": rows}, from_attributes=True)
        except ValidationError as exc:
            raise EventsRefused(422, api.problems(exc)) from exc


USAGE = Outbox(UsageOutbox, api.USAGE_EVENTS, api.UsageBatch)
AUDIT = Outbox(AuditOutbox, api.AUDIT_EVENTS, api.ReportedAuditBatch)


class ControlPlaneMetering:
    def __init__(
        self,
        client: ControlPlaneClient,
        *,
        interval: float = INTERVAL,
        batch: int = BATCH,
        clock: Clock = SYSTEM,
    ) -> None:
        self.client = client
        self.interval = interval
        self.batch = batch
        self._clock = clock
        self._wake = asyncio.Event()

    async def reserve(self, principal: Principal) -> str | None:
        assert principal.organization_id is not None
        reservation = new_id("rsv")
        try:
            await self.client.reserve(
                reservation,
                principal.organization_id,
                principal.api_key_id,
                principal.embed_key_id,
            )
        except ControlPlaneUnavailable as exc:
            log.warning("admitting a turn without a reservation: %s", exc.message)
        return reservation

    def recorded(self) -> None:
        self._wake.set()

    async def ship_once(self, db: async_sessionmaker, outbox: Outbox = USAGE) -> int:
        """Send the oldest batch of an outbox; returns how many rows left it."""
        table = outbox.table
        async with db() as s:
            rows: list[Any] = list(
                (await s.scalars(select(table).order_by(table.occurred_at).limit(self.batch))).all()
            )
        if not rows:
            return 0
        await self._send(outbox, rows)
        async with db() as s, s.begin():
            await s.execute(delete(table).where(table.event_id.in_([r.event_id for r in rows])))
        return len(rows)

    async def _send(self, outbox: Outbox, rows: list[Any]) -> None:
        """Send rows; a batch refused as malformed is split, so one bad row cannot hold up the
        rest. A single refused row is dropped and logged by id — resending cannot help."""
        try:
            answer = await self.client.send_events(outbox.path, outbox.body(rows))
        except EventsRefused as exc:
            if len(rows) == 1:
                log.error("the control plane refused event %s: %s", rows[0].event_id, exc)
                return
            for row in rows:
                await self._send(outbox, [row])
            return
        if answer.rejected:
            # Permanently refused (an org or key the control plane does not know): resending
            # cannot help, so they leave the outbox with the batch.
            log.error("the control plane rejected events %s", answer.rejected)

    async def drain(self, db: async_sessionmaker) -> None:
        for outbox in (USAGE, AUDIT):
            while await self.ship_once(db, outbox) == self.batch:
                pass

    async def run(self, db: async_sessionmaker) -> None:
        """The shipper: runs until cancelled, and never lets a failure stop it."""
        while True:
            with contextlib.suppress(TimeoutError):
                await self._clock.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()
            try:
                await self.drain(db)
            except ControlPlaneUnavailable as exc:
                log.info("usage stays in the outbox: %s", exc.message)
            except Exception:
                log.exception("shipping usage failed; retrying")
