"""Acting on a session's files as the session's uid.

The server (root) prepares a harness's folders before it starts: it creates directories and
seeds config files in them. Those folders belong to the sandbox, which may have planted
symlinks there; as root, writing through one would overwrite any host file. So that work runs
with the thread's filesystem uid set to the session's: the kernel then checks every path as
that uid and drops the root's override capabilities, and new files are the session's own.
`setfsuid` changes the calling thread only, so the rest of the server is unaffected.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterator
from contextlib import contextmanager

_libc = ctypes.CDLL(None, use_errno=True)


def current_fsuid() -> int:
    return int(_libc.setfsuid(-1))  # an invalid id changes nothing and returns the current one


@contextmanager
def acting_as(uid: int) -> Iterator[None]:
    previous_uid = int(_libc.setfsuid(uid))
    previous_gid = int(_libc.setfsgid(uid))
    try:
        if current_fsuid() != uid:
            raise PermissionError(f"cannot act as uid {uid} (euid {os.geteuid()})")
        yield
    finally:
        _libc.setfsgid(previous_gid)
        _libc.setfsuid(previous_uid)
