"""Engine set-up: SQLite under $KARTA_HOME by default, PostgreSQL via KARTA_DATABASE_URL."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from karta.core.sqlite_inline import connector


def async_url(url: str) -> str:
    """Accept plain `postgresql://` / `sqlite:///` URLs and pick the async driver."""
    parsed = make_url(url)
    driver = {"postgresql": "postgresql+asyncpg", "sqlite": "sqlite+aiosqlite"}.get(
        parsed.drivername, parsed.drivername
    )
    return parsed.set(drivername=driver).render_as_string(hide_password=False)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def _sqlite_manual_transactions(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # SQLAlchemy's `begin` event issues BEGIN itself


# A pooled PostgreSQL connection idle for longer than this is pinged before it is used again: a
# server restart or an idle timeout may have closed it. One used more recently is not (the ping
# costs three round trips): if the server went away within the last second, what ran on it
# then failed too, and the first statement that finds the connection dead invalidates the
# whole pool, so the next checkout connects afresh.
PING_AFTER_IDLE = 1.0
_IDLE_SINCE = "karta_idle_since"  # in a connection record's `info`

# Options for a transaction of one statement (`one_statement`). With more rows than this, a
# multi-row insert becomes several statements (SQLAlchemy's `insertmanyvalues` pages).
ROWS_PER_STATEMENT = 1000

READ_ONLY = "karta_read_only"  # an execution option: this engine's transactions only read


def _begin(conn: Connection) -> None:
    reading = conn.get_execution_options().get(READ_ONLY, False)
    conn.exec_driver_sql("BEGIN" if reading else "BEGIN IMMEDIATE")


def create_engine(
    url: str, *, serialized_writes: bool = False, in_place: bool = False
) -> AsyncEngine:
    """With `serialized_writes`, SQLite transactions take the write lock when they begin, so
    read-then-write transactions (the audit chain, invitations) queue instead of failing with
    SQLITE_BUSY; PostgreSQL gets row locks from the queries themselves. Transactions of the
    engine's `reader` take no lock: they read a snapshot beside the writers.

    With `in_place`, a SQLite file's statements run on the event loop's thread through one
    connection (`karta.core.sqlite_inline`): for an engine whose transactions are short and
    which no other process writes to while it runs (the data plane's).

    A pooled PostgreSQL connection is pinged before use when it has been idle for a while
    (`PING_AFTER_IDLE`), and the pool hands out the most recently used one first, so a busy
    server's connections stay fresh and skip the ping. A SQLite file cannot go away under its
    connection, so its checkouts skip that round trip through the driver's thread."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        engine = create_async_engine(async_url(url), pool_use_lifo=True)
        _ping_when_idle(engine)
        return engine
    options: dict[str, Any] = {}
    if in_place and _plain_file(parsed.database):
        assert not serialized_writes, "one in-place connection already serializes its writes"
        options = {
            "async_creator": connector(str(parsed.database)),
            "pool_size": 1,
            "max_overflow": 0,
        }
    engine = create_async_engine(async_url(url), pool_pre_ping=False, **options)
    _private_file(engine.url.database)
    event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    if serialized_writes:
        event.listen(engine.sync_engine, "connect", _sqlite_manual_transactions)
        event.listen(engine.sync_engine, "begin", _begin)
    return engine


def _ping_when_idle(engine: AsyncEngine) -> None:
    dialect = engine.dialect

    def idle_from_now(_dbapi_connection: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    def check(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if time.monotonic() - record.info.get(_IDLE_SINCE, 0.0) <= PING_AFTER_IDLE:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as exc:  # the pool drops the connection and checks out another
            raise DisconnectionError("the pooled connection is gone") from exc

    event.listen(engine.sync_engine, "connect", idle_from_now)
    event.listen(engine.sync_engine, "checkin", idle_from_now)
    event.listen(engine.sync_engine, "checkout", check)


def one_statement(dialect: str, rows: int = 1) -> dict[str, Any]:
    """Execution options for a transaction that is one statement (of `rows` rows, for a
    multi-row insert): on PostgreSQL it runs in autocommit, atomic by itself, without the
    BEGIN and COMMIT round trips; SQLite has no server to save round trips to."""
    if dialect == "postgresql" and rows <= ROWS_PER_STATEMENT:
        return {"isolation_level": "AUTOCOMMIT"}
    return {}


def reader(engine: AsyncEngine) -> AsyncEngine:
    """`engine` for transactions that only read (the same pool): on SQLite with serialized
    writes they begin deferred, so reads do not queue behind writes nor hold them up."""
    return engine.execution_options(**{READ_ONLY: True})


def _plain_file(database: str | None) -> bool:
    return bool(database) and database != ":memory:" and not str(database).startswith("file:")


def _private_file(database: str | None) -> None:
    """Create the SQLite file 0600 before SQLite does (with the umask's 0644): it holds what
    only the planes may read. SQLite gives its -wal and -shm files the same mode."""
    if not _plain_file(database):
        return
    path = Path(str(database))
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        os.chmod(path, 0o600)
    except OSError:
        return  # no such folder, say: SQLite reports it when the engine first connects


def sessionmaker(engine: AsyncEngine) -> async_sessionmaker:
    return async_sessionmaker(engine, expire_on_commit=False)


def _alembic_config(migrations: Path) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations))
    return cfg


async def migrate(engine: AsyncEngine, migrations: Path) -> None:
    """Bring the schema to the newest revision (idempotent; runs at start-up)."""

    def upgrade(sync_conn: Connection) -> None:
        cfg = _alembic_config(migrations)
        cfg.attributes["connection"] = sync_conn
        command.upgrade(cfg, "head")

    async with engine.begin() as conn:
        await conn.run_sync(upgrade)
