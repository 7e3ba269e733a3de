"""SQLite on the event loop's own thread, for SQLAlchemy's asyncio engine.

The aiosqlite driver runs each connection's calls on a thread of its own, so every cursor,
execute, fetch and commit is a hand-off to that thread and a wake-up of the event loop to
carry the answer back: about a tenth of a millisecond each, several per statement. A
one-row insert into a local SQLite file takes less than that, so the hand-offs were most of
a session create (two inserts: 2.2 ms against 0.9 ms run in place).

Here the calls run in place, on the loop's thread. That is only safe with one connection per
engine (`pool_size=1`, see `karta.core.db`): two connections of one process writing at once
would have the second wait in SQLite's busy handler, which sleeps on the loop's thread while
the first cannot get the loop to commit. With one connection, transactions queue for it in
the pool, without blocking the loop.

The objects below are the part of aiosqlite's interface SQLAlchemy's `aiosqlite` dialect
uses; their coroutines finish without suspending.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Sequence
from typing import Any


class Cursor:
    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    async def __aenter__(self) -> Cursor:
        return self

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value

    async def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> Cursor:
        self._cursor.execute(sql, () if parameters is None else parameters)
        return self

    async def executemany(self, sql: str, parameters: Iterable[Sequence[Any]]) -> Cursor:
        self._cursor.executemany(sql, parameters)
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(self._cursor.arraysize if size is None else size)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()


class Connection:
    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection: sqlite3.Connection | None = connection  # None once closed

    @property
    def _open(self) -> sqlite3.Connection:
        if self._connection is None:
            raise ValueError("no active connection")
        return self._connection

    @property
    def isolation_level(self) -> str | None:
        return self._open.isolation_level

    def cursor(self) -> Cursor:
        return Cursor(self._open.cursor())

    async def commit(self) -> None:
        self._open.commit()

    async def rollback(self) -> None:
        self._open.rollback()

    async def create_function(self, *args: Any, **kw: Any) -> None:
        self._open.create_function(*args, **kw)

    async def close(self) -> None:
        self.stop()

    def stop(self) -> None:
        """Close now (SQLAlchemy's `terminate`); an open transaction is rolled back."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def connector(database: str) -> Callable[[], Any]:
    """The engine's `async_creator`: a new in-place connection to `database`.

    Connections may be closed by the garbage collector on another thread, so they do not
    check which thread uses them; the pool of one is what keeps their use serial."""

    async def connect() -> Connection:
        return Connection(sqlite3.connect(database, check_same_thread=False))

    return connect
