"""One server per embedded database: a process that keeps a plane's state in SQLite holds an
exclusive lock (`fcntl.flock`) on `<database>.lock` for its lifetime, and a second server on the
same file is refused with a message naming the first. The lock goes when the process does,
however it ends. PostgreSQL-backed planes take no lock: replicas share that storage on purpose.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from sqlalchemy.engine import make_url


class StateInUse(Exception):
    def __init__(self, database: Path, holder: str) -> None:
        who = f" ({holder})" if holder else ""
        super().__init__(
            f"another Karta server{who} is using {database}: stop it, or give this one its "
            "own state folder (KARTA_HOME)"
        )


def sqlite_file(url: str) -> Path | None:
    """The database file of a `sqlite:///…` URL (None for anything else, or in memory)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    if parsed.database == ":memory:":
        return None
    return Path(parsed.database).expanduser().resolve()


@contextlib.contextmanager
def hold(database_urls: Iterable[str], holder: str) -> Iterator[None]:
    """Lock every SQLite database among `database_urls` for the block (StateInUse when another
    process holds one); `holder` says who we are, for the message a second server prints."""
    with contextlib.ExitStack() as stack:
        for path in sorted({p for url in database_urls if (p := sqlite_file(url))}):
            stack.enter_context(_locked(path, holder))
        yield


@contextlib.contextmanager
def _locked(database: Path, holder: str) -> Iterator[None]:
    database.parent.mkdir(parents=True, exist_ok=True)
    lock = database.with_name(database.name + ".lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder_text = os.pread(fd, 512, 0).decode(errors="replace").strip()
            raise StateInUse(database, holder_text) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}, {holder}".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
