"""The control plane's SQLite engine serializes writes (each transaction takes the write lock
when it begins); its `reader` begins deferred, so a read runs beside an open write and sees
the last committed state, and it holds up no write."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from karta.core import db as store


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = store.create_engine(f"sqlite:///{tmp_path / 'c.db'}", serialized_writes=True)
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE notes (body TEXT)"))
        await conn.execute(text("INSERT INTO notes VALUES ('committed')"))
    yield engine
    await engine.dispose()


async def test_a_read_runs_beside_an_open_write_and_sees_only_what_is_committed(
    engine: AsyncEngine,
) -> None:
    writes, reads = store.sessionmaker(engine), store.sessionmaker(store.reader(engine))
    written, release = asyncio.Event(), asyncio.Event()

    async def write() -> None:
        async with writes() as db, db.begin():
            await db.execute(text("INSERT INTO notes VALUES ('pending')"))
            written.set()
            await release.wait()  # the write lock is held until the read is done

    writer = asyncio.create_task(write())
    await written.wait()
    async with reads() as db:
        seen = (await db.scalars(text("SELECT body FROM notes"))).all()
    release.set()
    await writer
    assert seen == ["committed"]
    async with reads() as db:
        assert (await db.scalars(text("SELECT body FROM notes ORDER BY rowid"))).all() == [
            "committed",
            "pending",
        ]


async def test_a_write_commits_while_a_read_is_open_and_the_read_keeps_its_snapshot(
    engine: AsyncEngine,
) -> None:
    writes, reads = store.sessionmaker(engine), store.sessionmaker(store.reader(engine))
    async with reads() as reading:
        before = (await reading.scalars(text("SELECT body FROM notes"))).all()
        async with writes() as db, db.begin():
            await db.execute(text("INSERT INTO notes VALUES ('later')"))
        during = (await reading.scalars(text("SELECT body FROM notes"))).all()
    assert before == during == ["committed"]
