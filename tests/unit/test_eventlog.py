"""The event log on both databases: strictly increasing seq, replay from any point, live tail,
bounded size — the same contract on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from karta.core import db as store
from karta.core.events import Event
from karta.dataplane.eventlog import SqlEventLog
from karta.dataplane.store import MIGRATIONS
from karta.dataplane.store.models import SessionRow
from tests.conftest import Database


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def log(request, tmp_path) -> AsyncIterator[SqlEventLog]:  # type: ignore[no-untyped-def]
    database = Database(request.param)
    engine = store.create_engine(database.url or f"sqlite:///{tmp_path / 'k.db'}", in_place=True)
    await store.migrate(engine, MIGRATIONS)
    sessions = store.sessionmaker(engine)
    async with sessions() as db, db.begin():
        db.add_all([SessionRow(id=s, app_name="t") for s in ("s1", "s2")])
    yield SqlEventLog(sessions)
    await engine.dispose()
    database.drop()


async def test_seq_is_per_session_and_contiguous_under_concurrency(log):
    await asyncio.gather(
        *(log.append("s1", Event("text", {"i": i})) for i in range(20)),
        log.append("s2", Event("text")),
    )
    events = await log.read("s1")
    assert [e.seq for e in events] == list(range(1, 21))
    assert sorted(e.data["i"] for e in events) == list(range(20))
    assert [e.seq for e in await log.read("s2")] == [1]


async def test_replay_after_a_cursor_survives_a_new_process(log):
    for i in range(5):
        await log.append("s1", Event("text", {"i": i}))
    await log.close()  # what a server does on shutdown
    fresh = SqlEventLog(log._db)  # no memory tail: reads the database
    assert [e.seq for e in await fresh.read("s1", after=3)] == [4, 5]
    assert await fresh.last_seq("s1") == 5
    assert (await fresh.append("s1", Event("done"))).seq == 6


async def test_subscribe_replays_then_tails_live(log):
    await log.append("s1", Event("a"))
    seen: list[str] = []

    async def reader() -> None:
        async for event in log.subscribe("s1", after=0, keepalive=0.05):
            if event is not None:
                seen.append(event.type)
                if event.type == "done":
                    return

    task = asyncio.create_task(reader())
    await asyncio.sleep(0.1)
    await log.append("s1", Event("b"))
    await log.append("s1", Event("done"))
    await asyncio.wait_for(task, 2)
    assert seen == ["a", "b", "done"]


async def test_subscribe_ticks_keepalive_when_idle(log):
    stream = log.subscribe("s1", after=0, keepalive=0.01)
    assert await asyncio.wait_for(anext(stream), 1) is None
    await stream.aclose()


async def test_idle_subscribers_share_one_timer_and_each_ticks_on_its_own_keepalive(log):
    ticks = {0.05: 0, 60.0: 0}

    async def idle(keepalive: float) -> str:
        async for event in log.subscribe("s1", after=0, keepalive=keepalive):
            if event is None:
                ticks[keepalive] += 1
            else:
                return event.type
        raise AssertionError("unreachable")

    readers = [asyncio.create_task(idle(k)) for k in [60.0] * 20 + [0.05]]
    async with asyncio.timeout(20):
        while ticks[0.05] < 3:
            await asyncio.sleep(0.01)
            timers = [w.timer for w in log._changed.values() if w.timer is not None]
            assert len(timers) <= 1, "one timer for the session, not one per subscriber"
    assert ticks[60.0] == 0, "the others looked again and went back to waiting"
    await log.append("s1", Event("done"))
    assert await asyncio.wait_for(asyncio.gather(*readers), 20) == ["done"] * 21


async def test_prune_keeps_the_newest_events(log):
    for _ in range(10):
        await log.append("s1", Event("x"))
    await log.prune("s1", keep=3)
    await log.close()
    fresh = SqlEventLog(log._db)
    assert [e.seq for e in await fresh.read("s1")] == [8, 9, 10]


async def test_pausing_events_are_durable_before_anyone_sees_them(log):
    await log.append("s1", Event("text"))
    await log.append("s1", Event("done"))
    fresh = SqlEventLog(log._db)  # without close(): the done must already be written
    assert [e.type for e in await fresh.read("s1")] == ["text", "done"]


async def test_a_pausing_append_goes_on_before_anyone_reads_its_event(log):
    """Whichever flush writes a turn's `done`, its appender (which frees the session for the
    next turn) resumes before a reader gets the event: a client that hears the turn ended
    never finds it still running."""
    await log.append("s1", Event("text"))
    await log.read("s1", fresh=True)  # written; the owner's counter is known
    order: list[str] = []

    async def append_done() -> None:
        await log.append("s1", Event("done"))
        order.append("appended")

    async def read_fresh() -> None:
        events = await log.read("s1", fresh=True)
        if any(e.type == "done" for e in events):
            order.append("read")

    async with log._write_lock:  # a batch is being written: both queue behind it
        reader = asyncio.create_task(read_fresh())
        await asyncio.sleep(0)
        appender = asyncio.create_task(append_done())
        await asyncio.sleep(0)
        await asyncio.sleep(0)
    await asyncio.gather(reader, appender)
    assert order == ["appended", "read"]


async def test_an_event_its_successor_wrote_first_is_neither_shown_nor_published(log):
    stale = SqlEventLog(log._db, replica="stale")  # still believes it owns s1
    assert await stale.last_seq("s1") == 0
    woken = []
    await stale.coordinator.start(woken.append, lambda: None)
    await log.append("s1", Event("text", {"by": "successor"}))
    await log.flush()
    await stale.append("s1", Event("text", {"by": "stale"}))  # seq 1 too: refused
    await stale.flush()
    assert [e.data for e in await stale.read("s1")] == [{"by": "successor"}]
    assert woken == [], "no wake-up for an event that was not stored"


async def test_a_batch_larger_than_one_statement_is_written_whole(log):
    await asyncio.gather(*(log.append("s1", Event("text", {"i": i})) for i in range(2500)))
    await log.flush()
    fresh = SqlEventLog(log._db)  # reads the database, not the memory tail
    assert [e.seq for e in await fresh.read("s1")] == list(range(1, 2501))
