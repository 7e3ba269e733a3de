"""Publishing releases: receive an archive as a stream, validate what it holds, and keep it
content-addressed by sha256 under `$KARTA_HOME/artifacts`.

Validation extracts the archive with the same safe extractor the data plane uses, loads it as a
harness app (harness detected, agents parse, `karta.toml` and `karta.jsonc` valid) and checks that
every env var `karta.toml` declares as required is bound on the project. A release that fails is
recorded as failed with its build log and can never become active.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import tomllib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from karta.app import load_app
from karta.core.errors import KartaError
from karta.releases.archive import extract


class ArchiveTooLarge(KartaError):
    status = 413
    code = "archive_too_large"


@dataclass(frozen=True)
class Upload:
    path: Path
    digest: str
    size: int


async def receive(chunks: AsyncIterator[bytes], tmp_dir: Path, max_bytes: int) -> Upload:
    """Spool the request body to a temporary file, hashing as it arrives."""
    fd, name = tempfile.mkstemp(dir=tmp_dir, suffix=".upload")
    sha, size = hashlib.sha256(), 0
    try:
        with os.fdopen(fd, "wb") as out:
            async for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise ArchiveTooLarge(f"the archive is larger than {max_bytes} bytes")
                sha.update(chunk)
                out.write(chunk)
    except BaseException:
        os.unlink(name)
        raise
    return Upload(Path(name), sha.hexdigest(), size)


@dataclass
class Validation:
    problem: str | None = None  # why the release is invalid; None when it is valid
    harness: str | None = None
    app_name: str | None = None
    agents: list[str] = field(default_factory=list)
    log: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.problem is None


def required_env(root: Path) -> list[str]:
    """The env vars `karta.toml` declares with `required = true` under `[env]`."""
    path = root / "karta.toml"
    if not path.is_file():
        return []
    table: Any = tomllib.loads(path.read_text()).get("env") or {}
    if not isinstance(table, dict):
        raise ValueError("karta.toml: [env] must be a table")
    required = []
    for name, spec in table.items():
        if not isinstance(spec, dict) or not isinstance(spec.get("required", False), bool):
            raise ValueError(f"karta.toml: env.{name} must be a table with a boolean 'required'")
        if spec.get("required"):
            required.append(name)
    return sorted(required)


def validate(archive: Path, bound_env: set[str], project: str) -> Validation:
    """Check an uploaded archive (blocking: run it in a thread). It is unpacked into a folder
    named after the project, so an app whose karta.toml names none is called after it."""
    result = Validation()
    with tempfile.TemporaryDirectory(prefix="karta-validate-") as tmp:
        root = Path(tmp) / project
        try:
            with archive.open("rb") as fh:
                size = extract(fh, root)
            result.log.append(f"extracted {size} bytes")
            app = load_app(root)
            result.harness, result.app_name = app.harness, app.name
            result.agents = [a["name"] for a in app.public_agents()]
            result.log.append(f"harness: {app.harness}; agents: {', '.join(result.agents)}")
            missing = [name for name in required_env(root) if name not in bound_env]
            if missing:
                raise ValueError(
                    f"required env var {', '.join(missing)} unbound: bind with "
                    f"'karta env set <project> NAME=value' before publishing"
                )
        except KartaError as exc:
            result.problem = exc.message
        except (ValueError, tomllib.TOMLDecodeError) as exc:
            result.problem = str(exc)
    result.log.append(f"error: {result.problem}" if result.problem else "release is valid")
    return result


class ArtifactStore:
    """Archives on disk by digest; writing one that exists is a no-op."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, digest: str) -> Path:
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ValueError(f"not a sha256 digest: {digest!r}")
        return self.root / digest[:2] / f"{digest}.tar.gz"

    def put(self, upload: Upload) -> Path:
        target = self.path(upload.digest)
        if target.exists():
            upload.path.unlink(missing_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(upload.path), target)
        return target

    def open(self, digest: str) -> BinaryIO:
        return self.path(digest).open("rb")
