"""PostgreSQL connections: a pooled connection the server closed while it sat idle is noticed
before use and replaced, with nothing failing; one closed within a second of its last use
fails the statement that finds it (as whatever ran on it then did) and the pool starts over.
A transaction of one statement commits by itself."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import exc, text
from sqlalchemy.ext.asyncio import AsyncEngine

from karta.core import db as store
from tests.conftest import Database, _pg

pytestmark = pytest.mark.postgres


@pytest.fixture
async def engine() -> AsyncIterator[AsyncEngine]:
    database = Database("postgres")
    assert database.url is not None
    engine = store.create_engine(database.url)
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE notes (body TEXT)"))
    yield engine
    await engine.dispose()
    database.drop()


async def backend(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(text("SELECT pg_backend_pid()")))


def close_on_the_server(pid: int) -> None:
    _pg(f"SELECT pg_terminate_backend({pid})")


async def test_a_connection_closed_while_idle_is_replaced_before_use(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store, "PING_AFTER_IDLE", 0.0)  # every checkout counts as idle
    pid = await backend(engine)
    close_on_the_server(pid)
    assert await backend(engine) != pid  # pinged, found closed, reconnected: nothing failed


async def test_a_connection_closed_right_after_use_fails_once_then_the_pool_reconnects(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store, "PING_AFTER_IDLE", 3600.0)  # never pinged
    pid = await backend(engine)
    close_on_the_server(pid)
    with pytest.raises(exc.DBAPIError) as failure:
        await backend(engine)
    assert failure.value.connection_invalidated
    assert await backend(engine) != pid


async def test_a_one_statement_transaction_commits_by_itself(engine: AsyncEngine) -> None:
    sessions = store.sessionmaker(engine)
    async with sessions() as db:
        await db.connection(execution_options=store.one_statement("postgresql"))
        await db.execute(text("INSERT INTO notes VALUES ('kept')"))
        # No commit: the statement committed as it ran (and a rollback has nothing to undo).
        await db.rollback()
    async with sessions() as db:
        assert (await db.scalars(text("SELECT body FROM notes"))).all() == ["kept"]


def test_a_statement_of_more_rows_than_one_page_gets_a_transaction() -> None:
    assert store.one_statement("postgresql", store.ROWS_PER_STATEMENT + 1) == {}
    assert store.one_statement("sqlite") == {}
