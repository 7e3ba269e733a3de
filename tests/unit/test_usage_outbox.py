"""The outboxes against the real control plane: rows leave only after the control plane
accepted them, survive an outage, drain in batches on recovery, a resent batch counts once, a
malformed event holds up nothing, and the shipper runs on its clock."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator
from datetime import datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import async_sessionmaker

from karta.core import db as store
from karta.core import internal_api as api
from karta.core.errors import BudgetExhausted
from karta.dataplane.control.client import ControlPlaneUnavailable
from karta.dataplane.control.usage import USAGE, ControlPlaneMetering
from karta.dataplane.runtime.metering import Billing
from karta.dataplane.runtime.records import usage_row
from karta.dataplane.runtime.repository import Repository
from karta.dataplane.store import MIGRATIONS
from karta.dataplane.store.models import AuditOutbox, UsageOutbox
from karta.testing import FakeClock
from tests.conftest import Database
from tests.unit.control_plane_double import ControlPlaneDouble, Tenant


@pytest.fixture
async def db(tmp_path) -> AsyncIterator[async_sessionmaker]:
    engine = store.create_engine(f"sqlite:///{tmp_path / 'karta.db'}", in_place=True)
    await store.migrate(engine, MIGRATIONS)
    yield store.sessionmaker(engine)
    await engine.dispose()


@pytest.fixture
async def acme(control: ControlPlaneDouble) -> Tenant:
    return await control.signup("acme")


@pytest.fixture
def metering(control: ControlPlaneDouble, clock: FakeClock) -> ControlPlaneMetering:
    return ControlPlaneMetering(control.client(clock), clock=clock)


async def waiting(db: async_sessionmaker, table: type[UsageOutbox] | type[AuditOutbox]) -> int:
    async with db() as s:
        return int(await s.scalar(select(func.count()).select_from(table)) or 0)


async def turns(db: async_sessionmaker, tenant: Tenant, count: int) -> list[UsageOutbox]:
    rows = [usage_row(Billing(tenant.id, None, None), "sess_a", f"t{n}", {}) for n in range(count)]
    async with db() as s, s.begin():
        s.add_all(rows)
    return rows


async def test_the_outbox_drains_only_into_a_live_control_plane(db, control, acme, metering):
    billing = Billing(acme.id, acme.admin_key_id, 11)
    async with db() as s, s.begin():
        for n in range(250):
            usage = {"input_tokens": n, "output_tokens": 1, "model": "claude-sonnet-4-5"}
            s.add(usage_row(billing, "sess_a", f"turn_{n}", usage))

    control.faults.down = True
    with pytest.raises(ControlPlaneUnavailable):
        await metering.drain(db)
    assert await waiting(db, UsageOutbox) == 250, "nothing leaves while the control plane is down"

    control.faults.down = False
    await metering.drain(db)
    assert await waiting(db, UsageOutbox) == 0
    assert control.faults.calls.count(api.USAGE_EVENTS) == 1 + 3, "batches of at most 100"
    ledger = await control.ledger(acme)
    assert len(ledger) == 250 and sum(e.input_tokens for e in ledger) == sum(range(250))
    first = min(ledger, key=lambda e: e.input_tokens)
    assert (first.api_key_id, first.project_id, first.session_id) == (
        acme.admin_key_id,
        11,
        "sess_a",
    )
    assert (first.turn_id, first.model, first.output_tokens) == ("turn_0", "claude-sonnet-4-5", 1)


async def test_usage_not_shipped_yet_counts_against_the_budget(db, control, acme, metering):
    """A budget check counts what the outbox still holds (per key and model), so a model call
    cannot slip past a cap while earlier calls' usage waits to be shipped."""
    repo = Repository(db)
    billing = Billing(acme.id, acme.admin_key_id, None)
    other = await control.signup("other")
    await control.cap_tokens(acme, 1_000)
    async with db() as s, s.begin():
        for model in ("claude-sonnet-4-5", "claude-haiku-4-5", "claude-sonnet-4-5"):
            usage = {"input_tokens": 300, "output_tokens": 33, "model": model}
            s.add(usage_row(billing, "sess_a", "turn_1", usage))
        s.add(usage_row(Billing(other.id, None, None), "sess_b", "turn_2", {"input_tokens": 900}))
    pending = await repo.pending_usage(acme.id)
    assert sorted((p.model, p.input_tokens, p.output_tokens) for p in pending) == [
        ("claude-haiku-4-5", 300, 33),
        ("claude-sonnet-4-5", 600, 66),
    ], "summed per model; another organization's rows are not this one's"
    outbox = functools.partial(repo.pending_usage, acme.id)
    await metering.check(billing, outbox)  # 999 of 1,000: one token is left
    async with db() as s, s.begin():
        s.add(usage_row(billing, "sess_a", "turn_1", {"input_tokens": 1}))
    with pytest.raises(BudgetExhausted):
        await metering.check(billing, outbox)
    await metering.drain(db)  # shipped: the ledger says the same, with nothing pending
    assert await repo.pending_usage(acme.id) == []
    with pytest.raises(BudgetExhausted):
        await metering.check(billing, outbox)


async def test_a_resent_batch_counts_once(db, control, acme, metering):
    rows = await turns(db, acme, 1)
    async with db() as s:
        stored = list((await s.scalars(select(UsageOutbox))).all())
    answer = await metering.client.send_events(USAGE.path, USAGE.body(stored))  # then "lost"
    assert (answer.accepted, answer.duplicates) == (1, 0)
    await metering.drain(db)
    assert [e.client_event_id for e in await control.ledger(acme)] == [rows[0].event_id]
    assert await waiting(db, UsageOutbox) == 0


async def test_one_malformed_event_does_not_hold_up_the_rest(db, control, acme, metering):
    rows = await turns(db, acme, 5)
    control.faults.poison = {rows[2].event_id}
    await metering.drain(db)
    assert await waiting(db, UsageOutbox) == 0, "the refused event is dropped, not retried"
    shipped = {e.client_event_id for e in await control.ledger(acme)}
    assert shipped == {r.event_id for r in rows} - control.faults.poison
    assert control.faults.calls.count(api.USAGE_EVENTS) == 1 + 5, "split into single events"


async def test_a_failing_control_plane_keeps_the_rows(db, control, acme, metering):
    await turns(db, acme, 3)
    control.faults.status = 503
    with pytest.raises(ControlPlaneUnavailable):
        await metering.drain(db)
    assert await waiting(db, UsageOutbox) == 3, "a 5xx is an outage, not a refusal"


async def test_decided_approvals_reach_the_audit_log_and_a_bad_one_stays_behind(
    db, control, acme, metering
):
    def decision(n: int, details: dict) -> AuditOutbox:
        return AuditOutbox(
            event_id=f"aud_{n}",
            organization_id=acme.id,
            actor_type="api_key",
            api_key_id=acme.admin_key_id,
            action="approval.decided",
            resource_type="approval",
            resource_id=f"req_{n}",
            details=details,
            occurred_at=datetime(2026, 11, 24, 10, 0),
        )

    async with db() as s, s.begin():
        s.add(decision(1, {"tool": "Write", "decision": "deny"}))
        s.add(decision(2, {"tool": ["not", "a", "scalar"]}))  # outside the contract
    await metering.drain(db)
    assert await waiting(db, AuditOutbox) == 0
    reported = [r for r in await control.audit(acme) if r["action"] == "approval.decided"]
    assert [r["resource_id"] for r in reported] == ["req_1"]
    assert reported[0]["actor_id"] == f"key:{acme.admin_key_id}"
    assert reported[0]["details"]["reported"] == {"tool": "Write", "decision": "deny"}
    assert control.faults.calls.count(api.AUDIT_EVENTS) == 1, "the bad row never left"


async def test_the_shipper_sends_a_lingering_batch_after_turns_and_on_its_interval(
    db, control, acme, clock
):
    metering = ControlPlaneMetering(control.client(clock), interval=30, clock=clock)
    shipper = asyncio.create_task(metering.run(db))
    try:
        await turns(db, acme, 1)  # written without a wake-up: it waits for the interval
        await asyncio.sleep(0.05)
        clock.advance(29)
        await asyncio.sleep(0.05)
        assert control.faults.calls == []
        clock.advance(1)
        await drained(db)
        await turns(db, acme, 1)
        metering.recorded()  # a turn finished: shipped once the linger is over
        await asyncio.sleep(0.05)
        await turns(db, acme, 1)
        metering.recorded()  # another ends meanwhile: same batch
        await asyncio.sleep(0.05)
        assert control.faults.calls == [api.USAGE_EVENTS]
        clock.advance(metering.linger)
        await drained(db)
    finally:
        shipper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await shipper
    assert len(await control.ledger(acme)) == 3
    assert control.faults.calls == [api.USAGE_EVENTS] * 2


async def drained(db: async_sessionmaker) -> None:
    """Until the shipper has emptied the usage outbox (a few seconds at most)."""
    for _ in range(500):
        if await waiting(db, UsageOutbox) == 0:
            return
        await asyncio.sleep(0.01)
    pytest.fail("the shipper did not drain the outbox")


@pytest.mark.postgres
async def test_two_shippers_on_one_postgres_outbox_count_every_row_once(control, acme, clock):
    """Replicas share the outbox: their shippers take disjoint batches (SKIP LOCKED), and
    whatever overlaps would still count once."""
    database = Database("postgres")
    engine = store.create_engine(database.url or "")
    try:
        await store.migrate(engine, MIGRATIONS)
        shared = store.sessionmaker(engine)
        rows = await turns(shared, acme, 250)
        shippers = [
            ControlPlaneMetering(control.client(clock), clock=clock, batch=20) for _ in "ab"
        ]
        await asyncio.gather(*(shipper.drain(shared) for shipper in shippers))
        assert await waiting(shared, UsageOutbox) == 0
        ledger = [e.client_event_id for e in await control.ledger(acme)]
        assert sorted(ledger) == sorted(r.event_id for r in rows)
    finally:
        await engine.dispose()
        database.drop()
