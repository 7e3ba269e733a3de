"""Per-session host uids: each session's processes run as a uid no other session (and no
system account) has, so even a process that escaped its namespaces meets ordinary file
permissions: other sessions' folders are 0700 and owned by someone else.

A session keeps its uid for its whole life (its files are owned by it, so a resumed harness
can read them); the record is a file `<pool dir>/<uid>` holding the session id, created with
O_EXCL so two servers sharing a home can never hand out the same uid.
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
            if owner is not None and owner != session_id and self.alive(owner):
                continue
            with contextlib.suppress(FileNotFoundError):
                (self.directory / str(uid)).unlink()  # a stale record, or our own lost one
            try:
                fd = os.open(self.directory / str(uid), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                continue
            with os.fdopen(fd, "w") as record:
                record.write(session_id)
            return uid
        raise RuntimeError("no free sandbox uid left")

    def release(self, uid: int, session_id: str) -> None:
        if self.owns(uid, session_id):
            (self.directory / str(uid)).unlink()
