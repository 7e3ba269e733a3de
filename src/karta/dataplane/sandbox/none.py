"""`KARTA_SANDBOX=none`: embedded dev mode for machines without bubblewrap. Same interface, no
isolation at all: the harness runs as the server's own user and can read everything it can."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

from karta.dataplane.harness.environment import write_launcher
from karta.dataplane.sandbox.base import SandboxHandle, SandboxRequest

DESCRIPTION = (
    "none: NOT ISOLATED. Harness processes run as the server's own user and can read its "
    "files and other sessions' workspaces. For a developer's own machine only"
)


class UnsandboxedHandle:
    backend = "none"
    harness_port = 0
    harness_socket = None

    def __init__(self, launch_dir: Path, model_url: str) -> None:
        self.launch_dir = launch_dir
        self.model_url = model_url

    def launcher(
        self, binary: str, env_names: Iterable[str], *, readonly: Iterable[Path] = ()
    ) -> Path:
        names = sorted(set(env_names))
        digest = hashlib.sha256("\0".join([binary, *names]).encode()).hexdigest()[:12]
        return write_launcher(self.launch_dir / f"{Path(binary).name}-{digest}", binary, names)

    def foreground(self) -> None:
        return None  # no cgroup to weigh: a pre-started harness competes like any other

    def as_owner(self) -> AbstractContextManager[None]:
        return nullcontext()  # no sandbox user: the harness runs as the server's

    async def destroy(self) -> None:
        return None


class NoSandbox:
    name = "none"
    isolated = False

    def __init__(self, home: Path, model_url: str) -> None:
        self.launch_dir = home / "bin"
        self.model_url = model_url

    def describe(self) -> str:
        return DESCRIPTION

    async def prepare(self, request: SandboxRequest) -> SandboxHandle:
        return UnsandboxedHandle(self.launch_dir, self.model_url)

    async def forget(self, session_id: str, root: Path) -> None:
        return None

    async def close(self) -> None:
        return None
