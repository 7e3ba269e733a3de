"""The data plane's SQLite engine runs statements on the event loop's thread through one
connection: concurrent transactions queue for it (none fails with "database is locked", none
sees another's half), a failed one leaves nothing behind, and the loop keeps running while
transactions wait."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from karta.core import db as store
from karta.dataplane.store import MIGRATIONS
from karta.dataplane.store.models import SessionRow


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = store.create_engine(f"sqlite:///{tmp_path / 'k.db'}", in_place=True)
    await store.migrate(engine, MIGRATIONS)
    yield engine
    await engine.dispose()


async def count(engine: AsyncEngine) -> int:
    async with store.sessionmaker(engine)() as db:
        return int(await db.scalar(select(func.count()).select_from(SessionRow)) or 0)


async def test_concurrent_write_transactions_queue_and_all_commit(engine: AsyncEngine) -> None:
    maker = store.sessionmaker(engine)

    async def write(index: int) -> None:
        async with maker() as db, db.begin():
            db.add(SessionRow(id=f"a{index}", app_name="t"))
            await db.flush()
            await asyncio.sleep(0)  # another task runs while this transaction is open
            db.add(SessionRow(id=f"b{index}", app_name="t"))

    await asyncio.gather(*(write(i) for i in range(40)))
    assert await count(engine) == 80


async def test_a_failed_transaction_leaves_nothing_and_the_engine_goes_on(
    engine: AsyncEngine,
) -> None:
    maker = store.sessionmaker(engine)
    async with maker() as db, db.begin():
        db.add(SessionRow(id="s1", app_name="t"))
    with pytest.raises(IntegrityError):
        async with maker() as db, db.begin():
            db.add(SessionRow(id="s2", app_name="t"))
            await db.flush()
            db.add(SessionRow(id="s1", app_name="t"))  # taken: the whole transaction goes
    assert await count(engine) == 1
    async with maker() as db, db.begin():
        db.add(SessionRow(id="s3", app_name="t"))
    assert await count(engine) == 2


async def test_statements_run_on_the_loops_thread(engine: AsyncEngine) -> None:
    seen: list[int] = []

    def where(_: object) -> int:
        seen.append(threading.get_ident())
        return 1

    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        raw.driver_connection._open.create_function("where_am_i", 1, where)
        await conn.execute(text("SELECT where_am_i(1)"))
    assert seen == [threading.get_ident()]


async def test_the_loop_runs_while_a_transaction_waits_for_the_connection(
    engine: AsyncEngine,
) -> None:
    maker = store.sessionmaker(engine)
    holding, release = asyncio.Event(), asyncio.Event()
    ticks = 0

    async def hold() -> None:
        async with maker() as db, db.begin():
            db.add(SessionRow(id="held", app_name="t"))
            await db.flush()
            holding.set()
            await release.wait()

    async def tick() -> None:
        nonlocal ticks
        while not release.is_set():
            ticks += 1
            await asyncio.sleep(0.01)

    holder = asyncio.create_task(hold())
    await holding.wait()
    waiter = asyncio.create_task(count(engine))
    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0.2)
    assert not waiter.done(), "the second transaction waits for the one connection"
    release.set()
    await asyncio.gather(holder, ticker)
    assert await waiter == 1
    assert ticks >= 5, "the loop kept running meanwhile"


async def test_other_sqlite_urls_keep_the_threaded_driver(tmp_path: Path) -> None:
    engine = store.create_engine("sqlite:///:memory:", in_place=True)
    try:
        async with engine.connect() as conn:
            raw = await conn.get_raw_connection()
            assert type(raw.driver_connection).__module__.startswith("aiosqlite")
    finally:
        await engine.dispose()
