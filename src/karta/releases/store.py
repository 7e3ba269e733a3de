"""The data plane's release cache: archives fetched from the control plane on first use,
verified against their sha256 digest, extracted safely and kept on disk by digest, bounded.

A release folder is written under a temporary name and renamed into place, so a reader never
sees a half-extracted release, and two concurrent first uses of one release extract it once.
Releases in use by a live session are never evicted.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from karta.core.errors import KartaError
from karta.releases.archive import extract

log = logging.getLogger(__name__)
Fetch = Callable[[str], AsyncIterator[bytes]]


class DigestMismatch(KartaError):
    status = 502
    code = "release_digest_mismatch"


class ReleaseStore:
    def __init__(self, root: Path, fetch: Fetch | None = None, max_releases: int = 16) -> None:
        self.root = root
        self.fetch = fetch
        self.max_releases = max_releases
        self._locks: dict[str, asyncio.Lock] = {}
        self._in_use: dict[str, int] = {}

    def path(self, digest: str) -> Path:
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ValueError(f"not a sha256 digest: {digest!r}")
        return self.root / digest

    async def materialize(self, digest: str, fetch: Fetch | None = None) -> Path:
        """The release's folder, fetching and extracting it on first use (with `fetch`, else
        the store's own: the origin can depend on who asks)."""
        target = self.path(digest)
        async with self._locks.setdefault(digest, asyncio.Lock()):
            if not await asyncio.to_thread(target.is_dir):
                origin = fetch or self.fetch
                if origin is None:
                    raise ValueError("the release store has no origin to fetch from")
                await self._download(digest, target, origin)
            await asyncio.to_thread(os.utime, target)  # recency, for eviction
        await asyncio.to_thread(self._evict, keep=digest)
        return target

    async def _download(self, digest: str, target: Path, fetch: Fetch) -> None:
        await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=self.root, suffix=".download")
        archive = Path(name)
        try:
            sha = hashlib.sha256()
            with os.fdopen(fd, "wb") as out:
                async for chunk in fetch(digest):
                    sha.update(chunk)
                    out.write(chunk)
            if sha.hexdigest() != digest:
                raise DigestMismatch(
                    f"release {digest[:12]} arrived with digest {sha.hexdigest()[:12]}"
                )
            await asyncio.to_thread(self._unpack, archive, target)
        finally:
            await asyncio.to_thread(archive.unlink, missing_ok=True)
        log.info("materialized release %s", digest[:12])

    def _unpack(self, archive: Path, target: Path) -> None:
        staging = Path(tempfile.mkdtemp(dir=self.root, prefix=".staging-"))
        try:
            with archive.open("rb") as fh:
                extract(fh, staging)
            staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def hold(self, digest: str) -> None:
        """Mark a release in use (a live session runs it): never evicted while held."""
        self._in_use[digest] = self._in_use.get(digest, 0) + 1

    def release(self, digest: str) -> None:
        left = self._in_use.get(digest, 0) - 1
        if left > 0:
            self._in_use[digest] = left
        else:
            self._in_use.pop(digest, None)

    def _evict(self, keep: str) -> None:
        folders = [p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")]
        if len(folders) <= self.max_releases:
            return
        folders.sort(key=lambda p: p.stat().st_mtime_ns)
        excess = len(folders) - self.max_releases
        for folder in folders:
            if excess <= 0:
                break
            if folder.name == keep or folder.name in self._in_use:
                continue
            shutil.rmtree(folder, ignore_errors=True)
            excess -= 1
            log.info("evicted release %s", folder.name[:12])
