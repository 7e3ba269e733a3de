"""Release archives: deterministic packing that leaves secrets out, and an extractor that refuses
every kind of malicious archive."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from karta.releases.archive import UnsafeArchive, digest_of, extract, pack_bytes

Member = Callable[[tarfile.TarFile], None]


def _folder(root: Path) -> Path:
    files = {
        "CLAUDE.md": "hello",
        ".claude/agents/a.md": "---\nname: a\n---\nbody",
        ".env": "SECRET=1",
        ".env.production": "SECRET=2",
        ".git/config": "[core]",
        "deploy.pem": "key",
        "notes/todo.txt": "x",
        "build/out.bin": "y",
        "build/keep.txt": "z",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (root / ".kartaignore").write_text("# comment\nbuild/*\n!build/keep.txt\nnotes/\n")
    return root


def _names(data: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return tar.getnames()


def test_pack_honours_ignores_and_is_deterministic(tmp_path: Path) -> None:
    root = _folder(tmp_path / "app")
    data = pack_bytes(root)
    assert _names(data) == [
        ".kartaignore",
        "CLAUDE.md",
        ".claude/agents/a.md",
        "build/keep.txt",
    ]
    (root / "CLAUDE.md").touch()  # a new mtime changes nothing
    assert digest_of(pack_bytes(root)) == digest_of(data)
    (root / "CLAUDE.md").write_text("changed")
    assert digest_of(pack_bytes(root)) != digest_of(data)


def test_include_re_includes_only_what_it_names(tmp_path: Path) -> None:
    root = _folder(tmp_path / "app")
    (root / ".env.example").write_text("SECRET=")
    assert ".env.example" not in _names(pack_bytes(root))
    names = _names(pack_bytes(root, include=[".env.example", "notes/todo.txt"]))
    assert ".env.example" in names and ".env" not in names and ".env.production" not in names
    # A folder the rules drop is not walked, exactly as with a `!` line in .kartaignore.
    assert "notes/todo.txt" not in names
    assert "notes/todo.txt" in _names(pack_bytes(root, include=["notes"]))


def test_pack_then_extract_round_trips(tmp_path: Path) -> None:
    root = _folder(tmp_path / "app")
    (root / "run.sh").write_text("#!/bin/sh\n")
    (root / "run.sh").chmod(0o755)
    dest = tmp_path / "out"
    extract(io.BytesIO(pack_bytes(root)), dest)
    assert (dest / "CLAUDE.md").read_text() == "hello"
    assert (dest / "run.sh").stat().st_mode & 0o111
    assert not (dest / ".env").exists()


def _archive(*adders: Member) -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for add in adders:
            add(tar)
    buffer.seek(0)
    return buffer


def _file(name: str, data: bytes = b"x") -> Member:
    def add(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))

    return add


def _special(name: str, kind: bytes, linkname: str = "") -> Member:
    def add(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.linkname = linkname
        tar.addfile(info)

    return add


MALICIOUS: dict[str, list[Member]] = {
    "absolute path": [_file("/etc/evil")],
    "dot-dot": [_file("ok/../../evil")],
    "symlink out": [_special("link", tarfile.SYMTYPE, "/etc/passwd")],
    "symlink then write through it": [
        _special("d", tarfile.SYMTYPE, "/tmp"),
        _file("d/evil"),
    ],
    "hardlink out": [_special("hard", tarfile.LNKTYPE, "/etc/passwd")],
    "device": [_special("dev", tarfile.CHRTYPE)],
    "fifo": [_special("fifo", tarfile.FIFOTYPE)],
    "repeated member": [_file("a"), _file("a")],
}


@pytest.mark.parametrize("kind", MALICIOUS)
def test_malicious_archives_are_refused(kind: str, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    with pytest.raises(UnsafeArchive):
        extract(_archive(*MALICIOUS[kind]), dest)
    assert not (tmp_path / "evil").exists()
    assert not Path("/tmp/evil").exists() or kind != "symlink then write through it"


def test_too_many_members(tmp_path: Path) -> None:
    with pytest.raises(UnsafeArchive, match="more than 10 members"):
        extract(_archive(*(_file(f"f{i}") for i in range(11))), tmp_path, max_members=10)


def test_decompression_bomb(tmp_path: Path) -> None:
    bomb = _archive(_file("zeros", bytes(8 << 20)))  # 8 MiB of zeros, a few KiB compressed
    assert len(bomb.getvalue()) < 64 << 10
    with pytest.raises(UnsafeArchive, match="expands beyond"):
        extract(bomb, tmp_path, max_bytes=1 << 20)


def test_garbage_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(UnsafeArchive, match="not a valid"):
        extract(io.BytesIO(b"not an archive"), tmp_path)
    truncated = _archive(_file("a", os.urandom(100_000))).getvalue()[:2_000]
    with pytest.raises(UnsafeArchive):
        extract(io.BytesIO(truncated), tmp_path / "t")
    with pytest.raises(UnsafeArchive):
        extract(io.BytesIO(gzip.compress(b"plain text, not a tar" * 50)), tmp_path / "g")
