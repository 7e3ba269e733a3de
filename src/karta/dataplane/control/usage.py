"""Metering against the control plane: the budget check before each turn and each model call,
and the shipper that drains the outboxes — usage to `POST /internal/usage/events`, approvals
decided to `POST /internal/audit/events`.

The model proxy's usage of each call is written to the outbox as the call ends, so usage
survives a control-plane outage and a data-plane restart alike. The shipper sends batches every
`interval` seconds, and `linger` seconds after a turn that wrote rows ends: the turns that end
meanwhile travel in the same batch, and the send stays off the clock of the next turn, which a
client sends as soon as it reads `done` (a send on every `done` cost each warm turn about 10 ms
on a 2-core machine). It deletes rows only after a 2xx. Event ids are idempotent on the control
plane, so a batch resent after a lost answer counts once.

A budget check sends what the outbox still holds for the organization, so usage not shipped yet
counts as spent. When the control plane answers that no cap applies to the payer (the org, the
key, the embed key), checks for that payer pass without asking for `uncapped_ttl` seconds, or
until the control plane pushes an invalidation for the org (it does whenever a cap is set); while
a cap applies every check asks, so a cap is never overrun by more than the calls in flight.
While the control plane is unreachable a check passes on the caller's cached
word (`budget_ok`, refused at once when it says the budget is spent): overspend during an
outage is bounded by the model calls made while it lasts, within the key cache's stale grace.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import async_sessionmaker

from karta.core import internal_api as api
from karta.core.clock import SYSTEM, Clock
from karta.dataplane.control.client import (
    ControlPlaneClient,
    ControlPlaneUnavailable,
    EventsRefused,
)
from karta.dataplane.runtime.metering import Billing
from karta.dataplane.store.models import AuditOutbox, UsageOutbox

log = logging.getLogger(__name__)

BATCH = 100
INTERVAL = 1.0
LINGER = 0.5
UNCAPPED_TTL = 5.0  # how long "no cap applies" stands without a push (the key cache's TTL)


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
        linger: float = LINGER,
        batch: int = BATCH,
        uncapped_ttl: float = UNCAPPED_TTL,
        clock: Clock = SYSTEM,
    ) -> None:
        self.client = client
        self.interval = interval
        self.linger = linger
        self.batch = batch
        self.uncapped_ttl = uncapped_ttl
        self._clock = clock
        self._wake = asyncio.Event()
        # A check reads the outbox and asks the control plane; a batch being shipped is in
        # both for a moment (counted, not yet deleted). The lock keeps the two apart, so this
        # process's checks never count a call twice.
        self._counting = asyncio.Lock()
        self._uncapped: dict[Billing, float] = {}  # payer -> when "no cap applies" was said
        self._evictions = 0  # an answer that straddles an eviction is not kept

    async def check(
        self, billing: Billing, pending: Callable[[], Awaitable[list[api.PendingUsage]]]
    ) -> None:
        said = self._uncapped.get(billing)
        if said is not None and self._clock.monotonic() - said < self.uncapped_ttl:
            return
        evictions = self._evictions
        try:
            async with self._counting:
                answer = await self.client.check_budget(
                    billing.organization_id,
                    billing.api_key_id,
                    await pending(),
                    billing.embed_key_id,
                )
        except ControlPlaneUnavailable as exc:
            log.warning("admitting without a budget check: %s", exc.message)
            return
        if answer.limited or evictions != self._evictions:
            self._uncapped.pop(billing, None)
        else:
            self._uncapped[billing] = self._clock.monotonic()

    def evict(self, organization_id: int) -> int:
        """The org's caps may have changed: its payers are asked about again."""
        self._evictions += 1
        doomed = [b for b in self._uncapped if b.organization_id == organization_id]
        for billing in doomed:
            del self._uncapped[billing]
        return len(doomed)

    def recorded(self) -> None:
        self._wake.set()

    async def ship_once(self, db: async_sessionmaker, outbox: Outbox = USAGE) -> int:
        """Send the oldest batch of an outbox; returns how many rows left it.

        Replicas share the outbox. On PostgreSQL a batch is locked while it is sent (`FOR
        UPDATE SKIP LOCKED`), so their shippers send disjoint batches. Without the lock (SQLite:
        one server) two shippers could send one batch twice, which still counts once: the
        control plane keeps each event id once, and a row leaves only after a 2xx."""
        table = outbox.table
        query = select(table).order_by(table.occurred_at).limit(self.batch)
        async with self._counting, db() as s:
            locked = s.bind.dialect.name == "postgresql"
            async with s.begin():
                batch = query.with_for_update(skip_locked=True) if locked else query
                rows: list[Any] = list((await s.scalars(batch)).all())
                if locked and rows:
                    await self._send(outbox, rows)
                    await self._delete(s, table, rows)
            if rows and not locked:  # no transaction open across the call: SQLite writers wait
                await self._send(outbox, rows)
                async with s.begin():
                    await self._delete(s, table, rows)
        return len(rows)

    @staticmethod
    async def _delete(
        s: Any, table: type[UsageOutbox] | type[AuditOutbox], rows: list[Any]
    ) -> None:
        await s.execute(delete(table).where(table.event_id.in_([r.event_id for r in rows])))

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
            if self._wake.is_set():
                await self._clock.sleep(self.linger)
            self._wake.clear()
            try:
                await self.drain(db)
            except ControlPlaneUnavailable as exc:
                log.info("usage stays in the outbox: %s", exc.message)
            except Exception:
                log.exception("shipping usage failed; retrying")
