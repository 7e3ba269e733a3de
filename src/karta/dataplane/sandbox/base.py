"""The one way the runtime starts a harness process: through a `Sandbox`.

`prepare` readies a session's sandbox (its uid, its limits, its private folders) and returns a
`SandboxHandle`; the harness adapter asks the handle for a launcher, an executable that runs
the harness binary inside the sandbox with only the environment variables it names, and
starts that instead of the binary. `destroy` ends every process the sandbox holds.

A backend that runs harnesses elsewhere (a microVM provider) implements the same two calls: its
`launcher` is a local stub that forwards stdio to the remote process (docs/security.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

# Where a harness inside a sandbox reaches the model proxy, and where OpenCode serves.
MODEL_PORT = 8787
HARNESS_PORT = 4096


@dataclass(frozen=True)
class SandboxRequest:
    session_id: str
    root: Path  # the session's folder ($KARTA_HOME/sessions/<id>)
    writable: tuple[Path, ...]  # inside `root`: the workspace and the harness's state
    cwd: Path
    serves: bool = False  # the harness serves HTTP (OpenCode): expose its port to the server
    # Pre-started for a session to come (the pool): its processes get CPU only when live
    # turns leave some, until `SandboxHandle.foreground`.
    background: bool = False


class SandboxHandle(Protocol):
    backend: str
    # What the harness is told: the model proxy's base URL as seen from inside, and the port
    # to serve on (0: pick one) when it serves HTTP.
    model_url: str
    harness_port: int

    @property
    def harness_socket(self) -> Path | None:
        """A UNIX socket on the host reaching the harness's HTTP port (None: plain loopback)."""
        ...

    def launcher(
        self, binary: str, env_names: Iterable[str], *, readonly: Iterable[Path] = ()
    ) -> Path:
        """An executable running `binary` (and its arguments) in the sandbox with only the
        variables in `env_names` from its own environment; `readonly`: more host files the
        harness needs to see."""
        ...

    def foreground(self) -> None:
        """A session adopted the (`background`) sandbox: its processes now weigh for CPU as
        any session's."""
        ...

    def as_owner(self) -> AbstractContextManager[None]:
        """Within it, the calling thread touches files as the sandbox's own user: what the
        server writes into the session's folders never follows a link the sandbox planted."""
        ...

    async def destroy(self) -> None:
        """Kill whatever is left of the sandbox's processes and remove its runtime files."""
        ...


class Sandbox(Protocol):
    name: str
    isolated: bool

    def describe(self) -> str:
        """One line for the banner and /readyz, in plain words."""
        ...

    async def prepare(self, request: SandboxRequest) -> SandboxHandle: ...

    async def forget(self, session_id: str, root: Path) -> None:
        """The session ended: release what it held for its whole life (its uid)."""
        ...

    async def close(self) -> None:
        """The server stops: no sandboxed process may survive it."""
        ...
