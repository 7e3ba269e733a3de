"""Which app a session runs, and which harness runs it.

A session is pinned when it is created: to its project's active release (a `Pin` with the
release's version and sha256 digest), or to the served folder's working copy (an empty `Pin`).
The pin is stored on the session row and every later turn loads the app from it, so activation
and rollback change what *new* sessions get and nothing else, across restarts too.

Published releases come from a `ReleaseSource` (the control plane, in the data plane): their
archives are materialized by `ReleaseStore` under `$KARTA_HOME/releases/<digest>/` on first use
and loaded once into a bounded in-memory table. The harness kind each app declares picks the
`Harness` that runs it, so one runtime serves several releases of several projects at once.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Protocol

from karta.app import HarnessApp, load_app
from karta.core.errors import ReleaseUnavailable
from karta.dataplane.harness.base import Harness
from karta.dataplane.principal import Principal
from karta.releases.store import ReleaseStore

MAX_LOADED = 64  # releases kept loaded in memory; a miss costs one load_app from disk


@dataclass(frozen=True)
class Pin:
    """The release a session runs for life; no digest: the served folder's working copy."""

    version: int | None = None
    digest: str | None = None

    @property
    def working_copy(self) -> bool:
        return self.digest is None


WORKING_COPY = Pin()


class ReleaseSource(Protocol):
    """Where releases and project env vars come from."""

    async def active(self, principal: Principal) -> Pin:
        """The release a new session of this caller starts on. Raises `ProjectNotFound` (404)
        or `NoActiveRelease` (409) on the project routes."""
        ...

    def artifact(self, digest: str, organization_id: int) -> AsyncIterator[bytes]:
        """A published release's archive, for an organization that published it."""
        ...

    async def env(self, organization_id: int, project_id: int) -> dict[str, str]:
        """The project's env vars, for its harness processes only."""
        ...


class WorkingCopyOnly:
    """No control plane (`karta run`, unit tests): every session runs the served folder and no
    project has env vars."""

    async def active(self, principal: Principal) -> Pin:
        return WORKING_COPY

    async def artifact(self, digest: str, organization_id: int) -> AsyncIterator[bytes]:
        raise ReleaseUnavailable(f"release {digest[:12]} cannot be fetched without a control plane")
        yield b""  # pragma: no cover - makes this an async generator

    async def env(self, organization_id: int, project_id: int) -> dict[str, str]:
        return {}


class Apps:
    def __init__(
        self,
        working_copy: HarnessApp,
        source: ReleaseSource,
        store: ReleaseStore,
        harness_for: Callable[[str], Harness],
        *,
        max_loaded: int = MAX_LOADED,
    ) -> None:
        self.working_copy = working_copy
        self.source = source
        self.store = store
        self._harness_for = harness_for
        self._harnesses: dict[str, Harness] = {}
        self._loaded: OrderedDict[tuple[str, str | None], HarnessApp] = OrderedDict()
        self._max_loaded = max(max_loaded, 1)

    def harness(self, kind: str) -> Harness:
        """The harness implementation for an app's kind (one instance per kind)."""
        if kind not in self._harnesses:
            self._harnesses[kind] = self._harness_for(kind)
        return self._harnesses[kind]

    def ready(self) -> bool:
        return self.harness(self.working_copy.harness).available()

    async def pin(self, principal: Principal) -> Pin:
        return await self.source.active(principal)

    async def env(self, organization_id: int | None, project_id: int | None) -> dict[str, str]:
        if organization_id is None or project_id is None:
            return {}  # a session outside any project (the flat routes, open mode)
        return await self.source.env(organization_id, project_id)

    async def app(self, pin: Pin, organization_id: int | None, name: str | None) -> HarnessApp:
        """The pinned app, from memory when it was loaded before (a turn needs no files: the
        session works in its own copy)."""
        if pin.digest is None:
            return self.working_copy
        loaded = self._loaded.get((pin.digest, name))
        if loaded is not None:
            self._loaded.move_to_end((pin.digest, name))
            return loaded
        async with self.checkout(pin, organization_id, name) as app:
            return app

    @asynccontextmanager
    async def checkout(
        self, pin: Pin, organization_id: int | None, name: str | None
    ) -> AsyncIterator[HarnessApp]:
        """The pinned app with its folder on disk, which eviction spares until the block ends
        (a new session copies it into its workspace). `name`: the app's name when its
        `karta.toml` gives none (the project's slug)."""
        digest = pin.digest
        if digest is None:
            yield self.working_copy
            return
        if organization_id is None:
            raise ReleaseUnavailable("a published release needs an organization to fetch it for")
        self.store.hold(digest)
        try:
            root = await self.store.materialize(
                digest, lambda d: self.source.artifact(d, organization_id)
            )
            app = self._loaded.get((digest, name))
            if app is None:  # a digest's content never changes: one load is enough
                app = await asyncio.to_thread(load_app, root, name)
            self._remember((digest, name), app)
            yield app
        finally:
            self.store.release(digest)

    def _remember(self, key: tuple[str, str | None], app: HarnessApp) -> None:
        self._loaded[key] = app
        self._loaded.move_to_end(key)
        while len(self._loaded) > self._max_loaded:
            self._loaded.popitem(last=False)
