"""The bound on a session's disk use: a turn may not grow its session's folder (the workspace
and the harness's state) past `limit` bytes.

No file system here gives a directory a quota of its own, so the folder is measured: when a turn
starts and every `interval` seconds while it runs. A turn that takes the folder over the limit
is ended (`disk_quota_exceeded`); a turn that starts over it may still run — it may be the one
that cleans up — but it may not add to it. Between two measurements a turn can write at most
what the sandbox's per-file limit (`KARTA_SANDBOX_FILE_MB`) and its write speed allow.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from karta.core.clock import Clock


def folder_bytes(root: Path) -> int:
    """What the files under `root` occupy on disk (allocated blocks, so a sparse file counts
    what it really uses). Links are not followed; what vanishes while walking is skipped."""
    total = 0
    pending = [str(root)]
    while pending:
        try:
            entries = os.scandir(pending.pop())
        except OSError:
            continue
        with entries:
            for entry in entries:
                try:
                    stat = entry.stat(follow_symlinks=False)
                    if entry.is_dir(follow_symlinks=False):
                        pending.append(entry.path)
                except OSError:
                    continue
                total += stat.st_blocks * 512
    return total


async def watch(root: Path, limit: int, interval: float, clock: Clock) -> int:
    """Return (with the bytes used) once the folder is over `limit` and larger than it was
    when the watch began; runs until cancelled otherwise."""
    start = await asyncio.to_thread(folder_bytes, root)
    while True:
        await clock.sleep(interval)
        used = await asyncio.to_thread(folder_bytes, root)
        if used > limit and used > start:
            return used
