"""The usage outbox: rows leave only after the control plane accepted them, survive an outage,
drain in batches on recovery, and a resent batch counts once."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import async_sessionmaker

from karta.dataplane.control import ControlPlaneClient, ControlPlaneUnavailable
from karta.dataplane.usage import ControlPlaneMetering, wire
from karta.runtime.metering import Billing
from karta.runtime.records import usage_row
from karta.store import db as store
from karta.store.models import UsageOutbox
from tests.unit.control_fakes import FakeControlPlane


@pytest.fixture
async def db(tmp_path) -> AsyncIterator[async_sessionmaker]:
    engine = store.create_engine(f"sqlite:///{tmp_path / 'karta.db'}")
    await store.migrate(engine)
    yield store.sessionmaker(engine)
    await engine.dispose()


async def outbox(db: async_sessionmaker) -> int:
    async with db() as s:
        return int(await s.scalar(select(func.count()).select_from(UsageOutbox)) or 0)


async def test_the_outbox_drains_only_into_a_live_control_plane(db):
    fake = FakeControlPlane()
    metering = ControlPlaneMetering(ControlPlaneClient("http://control", "svc", transport=fake))
    billing = Billing(organization_id=1, api_key_id=10, project_id=11, reservation_id="rsv_1")
    async with db() as s, s.begin():
        for n in range(250):
            usage = {"input_tokens": n, "output_tokens": 1, "model": "claude-sonnet-4-5"}
            s.add(usage_row(billing, "sess_a", f"turn_{n}", usage))

    fake.down = True
    with pytest.raises(ControlPlaneUnavailable):
        await metering.drain(db)
    assert await outbox(db) == 250, "nothing leaves while the control plane is down"

    fake.down = False
    await metering.drain(db)
    assert await outbox(db) == 0
    assert fake.calls.count("/internal/usage/events") == 1 + 3, "batches of at most 100"
    events = list(fake.usage.values())
    assert sum(e["input_tokens"] for e in events) == sum(range(250))
    first = fake.usage[min(fake.usage)]
    assert first["reservation_id"] == "rsv_1" and first["project_id"] == 11
    assert first["cache_read_tokens"] == 0 and first["model"] == "claude-sonnet-4-5"


async def test_a_resent_batch_counts_once(db):
    fake = FakeControlPlane()
    client = ControlPlaneClient("http://control", "svc", transport=fake)
    metering = ControlPlaneMetering(client)
    async with db() as s, s.begin():
        s.add(usage_row(Billing(1, None, None, None), "sess_a", "turn_1", {}))
    async with db() as s:
        rows = list((await s.scalars(select(UsageOutbox))).all())
    await client.send_events(
        "/internal/usage/events", [wire(r) for r in rows]
    )  # the answer was "lost"
    await metering.drain(db)
    assert len(fake.usage) == 1 and await outbox(db) == 0


async def test_one_malformed_event_does_not_hold_up_the_rest(db):
    fake = FakeControlPlane()
    metering = ControlPlaneMetering(ControlPlaneClient("http://control", "svc", transport=fake))
    async with db() as s, s.begin():
        rows = [usage_row(Billing(1, None, None, None), "sess_a", f"t{n}", {}) for n in range(5)]
        s.add_all(rows)
    fake.poison = {rows[2].event_id}
    await metering.drain(db)
    assert await outbox(db) == 0
    assert set(fake.usage) == {r.event_id for r in rows} - fake.poison
