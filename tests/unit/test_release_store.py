"""The data plane's release cache: fetch once, verify the digest, extract atomically, evict the
least recently used releases that no live session holds."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from karta.releases.archive import pack_bytes
from karta.releases.store import DigestMismatch, ReleaseStore


def _archive(tmp_path: Path, text: str) -> tuple[str, bytes]:
    root = tmp_path / f"src-{text}"
    root.mkdir()
    (root / "CLAUDE.md").write_text(text)
    data = pack_bytes(root)
    return hashlib.sha256(data).hexdigest(), data


class Origin:
    def __init__(self, archives: dict[str, bytes]) -> None:
        self.archives = archives
        self.fetches: list[str] = []

    async def fetch(self, digest: str) -> AsyncIterator[bytes]:
        self.fetches.append(digest)
        data = self.archives[digest]
        for i in range(0, len(data), 100):
            await asyncio.sleep(0)
            yield data[i : i + 100]


async def test_fetch_once_even_when_asked_concurrently(tmp_path: Path) -> None:
    digest, data = _archive(tmp_path, "v1")
    origin = Origin({digest: data})
    store = ReleaseStore(tmp_path / "releases", origin.fetch)
    paths = await asyncio.gather(*(store.materialize(digest) for _ in range(5)))
    assert len(set(paths)) == 1 and (paths[0] / "CLAUDE.md").read_text() == "v1"
    assert origin.fetches == [digest]
    assert await store.materialize(digest) == paths[0]
    assert origin.fetches == [digest]


async def test_a_tampered_archive_is_refused(tmp_path: Path) -> None:
    digest, _ = _archive(tmp_path, "v1")
    _, other = _archive(tmp_path, "evil")
    store = ReleaseStore(tmp_path / "releases", Origin({digest: other}).fetch)
    with pytest.raises(DigestMismatch):
        await store.materialize(digest)
    assert not store.path(digest).exists()
    assert [p.name for p in (tmp_path / "releases").iterdir()] == []


async def test_eviction_spares_held_releases(tmp_path: Path) -> None:
    archives = dict(_archive(tmp_path, f"v{n}") for n in range(4))
    digests = list(archives)
    store = ReleaseStore(tmp_path / "releases", Origin(archives).fetch, max_releases=2)
    await store.materialize(digests[0])
    store.hold(digests[0])
    for digest in digests[1:]:
        await store.materialize(digest)
    kept = {p.name for p in (tmp_path / "releases").iterdir()}
    assert digests[0] in kept and digests[3] in kept and len(kept) == 2
    store.release(digests[0])
    await store.materialize(digests[1])
    assert digests[0] not in {p.name for p in (tmp_path / "releases").iterdir()}
