"""Choosing the sandbox backend (`KARTA_SANDBOX=auto|bwrap|none`) and starting it together
with the model proxy it routes harnesses through."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from karta.dataplane.sandbox.base import Sandbox
from karta.dataplane.sandbox.bwrap import BwrapSandbox, unavailable_reason
from karta.dataplane.sandbox.none import NoSandbox
from karta.dataplane.sandbox.proxy import ModelProxy
from karta.dataplane.sandbox.upstreams import AccessSource, Upstreams
from karta.dataplane.settings import ConfigError, Settings

log = logging.getLogger(__name__)

BACKENDS = ("auto", "bwrap", "none")


@dataclass(frozen=True)
class Isolation:
    sandbox: Sandbox
    proxy: ModelProxy
    choice: str  # how the backend was chosen, in plain words


def choose_backend(settings: Settings) -> tuple[str, str]:
    """The backend's name and why it was picked; ConfigError when the choice is refused."""
    wanted = settings.sandbox
    if wanted not in BACKENDS:
        raise ConfigError(f"KARTA_SANDBOX={wanted!r}: choose one of {', '.join(BACKENDS)}")
    name, why = wanted, "set by KARTA_SANDBOX"
    if wanted != "none":
        reason = unavailable_reason(settings.home)
        if reason is not None and wanted == "bwrap":
            raise ConfigError(f"KARTA_SANDBOX=bwrap, but bwrap cannot work here: {reason}")
        if reason is not None:
            name, why = "none", f"auto: bwrap is unavailable ({reason})"
        elif wanted == "auto":
            name, why = "bwrap", "auto: bwrap works on this host"
    if name == "none" and settings.production and not settings.allow_unsandboxed:
        raise ConfigError(
            "refusing to run harnesses without a sandbox in production "
            f"({why}); set KARTA_SANDBOX_ALLOW_NONE=1 to do it anyway"
        )
    return name, why


@asynccontextmanager
async def open_isolation(
    settings: Settings, model_env: dict[str, str], model_access: AccessSource | None = None
) -> AsyncIterator[Isolation]:
    """`model_access`: the organizations' own provider keys (none: the platform's serve all)."""
    name, why = choose_backend(settings)
    upstreams = Upstreams(model_env, settings.providers, model_access)
    proxy = ModelProxy(model_env, upstreams=upstreams)
    socket_path = settings.node_dir / "proxy" / "model.sock"
    sandbox: Sandbox
    if name == "bwrap":
        replica = settings.replica_id if settings.replicated else None
        bwrap = BwrapSandbox(settings.home, socket_path, replica=replica)
        bwrap.start()
        socket_path.parent.mkdir(parents=True, exist_ok=True)
        socket_path.parent.chmod(0o711)
        await proxy.start(unix_path=socket_path)
        sandbox = bwrap
    else:
        await proxy.start(tcp=True)
        assert proxy.url is not None
        sandbox = NoSandbox(settings.home, proxy.url)
    log.info("sandbox: %s (%s)", sandbox.describe(), why)
    try:
        yield Isolation(sandbox, proxy, why)
    finally:
        try:
            await sandbox.close()
        finally:
            await proxy.stop()
