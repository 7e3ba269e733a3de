"""Release archives: a deterministic gzip'd tar of a harness app folder, and an extractor that
refuses anything that could escape its destination or exhaust the disk.

Packing is deterministic (sorted members, zeroed times and owners, normalized modes, a gzip
header without a timestamp), so the same folder always yields the same bytes and therefore the
same sha256 digest: publishing unchanged content is recognised instead of duplicated.
"""

from __future__ import annotations

import fnmatch
import gzip
import hashlib
import io
import os
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from karta.core.errors import KartaError

IGNORE_FILE = ".kartaignore"
# Never packed unless a `!pattern` line in .kartaignore asks for it: secrets and VCS state.
DEFAULT_IGNORES = (
    ".git",
    ".hg",
    ".svn",
    ".env",
    ".env.*",
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "id_rsa*",
    "id_ed25519*",
    ".karta",
    "__pycache__",
    "*.pyc",
    ".DS_Store",
)
MAX_MEMBERS = 50_000
MAX_BYTES = 1 << 30  # uncompressed
CHUNK = 1 << 16


class UnsafeArchive(KartaError):
    status = 422
    code = "unsafe_archive"


# --- packing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class IgnoreRules:
    """gitignore-like rules: a pattern matches a path or any of its parent folders; a pattern with
    a `/` matches from the root; `!pattern` re-includes; later lines win."""

    rules: tuple[tuple[str, bool], ...]

    @classmethod
    def for_folder(cls, root: Path, include: Sequence[str] = ()) -> IgnoreRules:
        """The defaults, then `.kartaignore`, then `include`: patterns re-included last, as if
        they were `!pattern` lines at the end of `.kartaignore`."""
        rules = [(p, False) for p in DEFAULT_IGNORES]
        path = root / IGNORE_FILE
        if path.is_file():
            for line in path.read_text().splitlines():
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                negate = line.startswith("!")
                rules.append((line[1:] if negate else line, negate))
        rules += [(p, True) for p in include]
        return cls(tuple(rules))

    @staticmethod
    def _matches(pattern: str, rel: PurePosixPath) -> bool:
        pattern = pattern.rstrip("/")
        if "/" in pattern:
            anchored = pattern.lstrip("/")
            return any(
                fnmatch.fnmatchcase(str(PurePosixPath(*rel.parts[: i + 1])), anchored)
                for i in range(len(rel.parts))
            )
        return any(fnmatch.fnmatchcase(part, pattern) for part in rel.parts)

    def ignored(self, rel: PurePosixPath) -> bool:
        verdict = False
        for pattern, negate in self.rules:
            if self._matches(pattern, rel):
                verdict = not negate
        return verdict


def _files(root: Path, rules: IgnoreRules) -> Iterator[tuple[PurePosixPath, Path]]:
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath)
        rel_dir = PurePosixPath(base.relative_to(root).as_posix())
        dirnames[:] = sorted(d for d in dirnames if not rules.ignored(rel_dir / d))
        for name in sorted(filenames):
            rel = rel_dir / name
            path = base / name
            if rules.ignored(rel) or path.is_symlink() or not path.is_file():
                continue  # links are never packed: a release holds plain files only
            yield rel, path


def pack(root: Path, out: BinaryIO, include: Sequence[str] = ()) -> list[str]:
    """Write the folder's archive to `out`; return the packed paths. `include` re-includes
    paths the ignore rules would drop (see `IgnoreRules.for_folder`)."""
    rules = IgnoreRules.for_folder(root, include)
    packed: list[str] = []
    with (
        gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for rel, path in _files(root, rules):
            info = tarfile.TarInfo(str(rel))
            info.size = path.stat().st_size
            info.mode = 0o755 if os.access(path, os.X_OK) else 0o644
            info.mtime = 0
            with path.open("rb") as fh:
                tar.addfile(info, fh)
            packed.append(str(rel))
    return packed


def pack_bytes(root: Path, include: Sequence[str] = ()) -> bytes:
    buffer = io.BytesIO()
    pack(root, buffer, include)
    return buffer.getvalue()


def digest_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- extracting ------------------------------------------------------------------------------


def _safe_name(name: str) -> PurePosixPath:
    rel = PurePosixPath(name)
    if name.startswith(("/", "\\")) or rel.is_absolute() or (rel.parts and ":" in rel.parts[0]):
        raise UnsafeArchive(f"archive member {name!r} has an absolute path")
    parts = [p for p in rel.parts if p not in ("", ".")]
    if ".." in parts or "\\" in name:
        raise UnsafeArchive(f"archive member {name!r} escapes the release folder")
    if not parts:
        raise UnsafeArchive(f"archive member {name!r} has an empty path")
    return PurePosixPath(*parts)


def extract(
    source: BinaryIO,
    dest: Path,
    *,
    max_members: int = MAX_MEMBERS,
    max_bytes: int = MAX_BYTES,
) -> int:
    """Extract a gzip'd tar into the empty folder `dest` and return the bytes written. Regular
    files and folders only: links, devices and FIFOs, absolute or escaping paths, more than
    `max_members` members or more than `max_bytes` uncompressed are refused with
    `UnsafeArchive` (the caller discards the half-written folder)."""
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    members = written = 0
    try:
        with tarfile.open(fileobj=source, mode="r|gz") as tar:
            for member in tar:
                members += 1
                if members > max_members:
                    raise UnsafeArchive(f"archive has more than {max_members} members")
                rel = _safe_name(member.name)
                target = root.joinpath(*rel.parts)
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                if not member.isreg():
                    kind = "link" if member.issym() or member.islnk() else "special file"
                    raise UnsafeArchive(f"archive member {member.name!r} is a {kind}")
                written += member.size
                if written > max_bytes:
                    raise UnsafeArchive(f"archive expands beyond {max_bytes} bytes")
                target.parent.mkdir(parents=True, exist_ok=True)
                if not target.parent.resolve().is_relative_to(root):
                    raise UnsafeArchive(f"archive member {member.name!r} escapes the folder")
                _write(tar, member, target)
    except (tarfile.TarError, EOFError, OSError, gzip.BadGzipFile) as exc:
        if isinstance(exc, FileExistsError):
            raise UnsafeArchive(f"archive repeats the member {exc.filename!r}") from exc
        raise UnsafeArchive(f"not a valid gzip'd tar archive: {exc}") from exc
    return written


def _write(tar: tarfile.TarFile, member: tarfile.TarInfo, target: Path) -> None:
    stream = tar.extractfile(member)
    assert stream is not None, "a regular member always has content"
    mode = 0o755 if member.mode & 0o111 else 0o644
    # O_EXCL: never write through something already there (a planted link, a repeated name).
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), mode)
    with os.fdopen(fd, "wb") as out:
        while chunk := stream.read(CHUNK):
            out.write(chunk)
