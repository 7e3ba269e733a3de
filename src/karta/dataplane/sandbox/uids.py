"""Per-session host uids: each session's processes run as a uid no other session (and no
system account) has, so even a process that escaped its namespaces meets ordinary file
permissions: other sessions' folders are 0700 and owned by someone else.

A session keeps its uid for its whole life (its files are owned by it, so a resumed harness
can read them); the record is a file `<pool dir>/<uid>` holding the session id, created with
O_EXCL so two servers sharing a home (replicas on one volume) can never hand out the same uid.
A stale record (its session is gone) is replaced only under the uid's lock, a directory made
with mkdir (atomic, on a network volume too), and is read again under it: two servers
reclaiming one stale record cannot both win, nor remove the record the other just wrote. A
server killed while it held a lock leaves that one uid locked for good, which costs one uid.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable
from pathlib import Path

FIRST_UID = 200_000
POOL_SIZE = 60_000


class UidPool:
    def __init__(
        self,
        directory: Path,
        alive: Callable[[str], bool],
        first: int = FIRST_UID,
        size: int = POOL_SIZE,
    ) -> None:
        """`alive(session_id)`: whether a session still exists (a stale record is reused)."""
        self.directory = directory
        self.alive = alive
        self.first = first
        self.size = size
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o700)

    def _owner(self, uid: int) -> str | None:
        try:
            return (self.directory / str(uid)).read_text()
        except FileNotFoundError:
            return None

    def _start(self, session_id: str) -> int:
        digest = hashlib.sha256(session_id.encode()).digest()
        return int.from_bytes(digest[:4], "big") % self.size

    def owns(self, uid: int, session_id: str) -> bool:
        return self.first <= uid < self.first + self.size and self._owner(uid) == session_id

    def uid(self, session_id: str, current: int | None = None) -> int:
        """The session's uid: `current` (the owner of its folder) when that is its record,
        else a newly allocated one."""
        if current is not None and self.owns(current, session_id):
            return current
        start = self._start(session_id)
        for step in range(self.size):
            uid = self.first + (start + step) % self.size
            owner = self._owner(uid)
            if owner == session_id:
                return uid  # its own record, found again
            if owner is None:
                if self._create(uid, session_id):
                    return uid
            elif not self.alive(owner) and self._reclaim(uid, owner, session_id):
                return uid
        raise RuntimeError("no free sandbox uid left")

    def _create(self, uid: int, session_id: str) -> bool:
        try:
            fd = os.open(self.directory / str(uid), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as record:
            record.write(session_id)
        return True

    def _reclaim(self, uid: int, stale: str, session_id: str) -> bool:
        """Replace the record of `stale` (a session gone), if it still is the record once the
        uid's lock is held."""
        lock = self.directory / f"{uid}.lock"
        try:
            lock.mkdir()
        except FileExistsError:
            return False  # someone else is reclaiming it
        try:
            if self._owner(uid) != stale:
                return False
            with contextlib.suppress(FileNotFoundError):
                (self.directory / str(uid)).unlink()
            return self._create(uid, session_id)
        finally:
            lock.rmdir()

    def release(self, uid: int, session_id: str) -> None:
        if self.owns(uid, session_id):
            (self.directory / str(uid)).unlink()
