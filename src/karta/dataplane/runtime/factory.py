"""Build a running `Runtime` from settings: storage, migrations, the apps it serves and their
harnesses."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from karta.app import HarnessApp
from karta.app.loader import CLAUDE_CODE, OPENCODE
from karta.core import db as store
from karta.core.clock import SYSTEM, Clock
from karta.core.errors import AppConfigError
from karta.dataplane.cluster import coordinator_for
from karta.dataplane.harness.base import Harness
from karta.dataplane.harness.claude_code import ClaudeCodeHarness
from karta.dataplane.harness.opencode import OpenCodeHarness
from karta.dataplane.runtime.apps import Apps, ReleaseSource, WorkingCopyOnly
from karta.dataplane.runtime.metering import Metering
from karta.dataplane.runtime.service import Runtime
from karta.dataplane.sandbox.setup import open_isolation
from karta.dataplane.sandbox.upstreams import AccessSource
from karta.dataplane.settings import Settings
from karta.dataplane.store import MIGRATIONS
from karta.releases.store import ReleaseStore


def harness_for(kind: str, settings: Settings) -> Harness:
    if kind == CLAUDE_CODE:
        return ClaudeCodeHarness(settings.home, max_retries=settings.harness_max_retries)
    if kind == OPENCODE:
        return OpenCodeHarness(settings.home)
    raise AppConfigError(f"unsupported harness {kind!r}")


def apps_for(
    app: HarnessApp,
    settings: Settings,
    source: ReleaseSource | None = None,
    harnesses: Callable[[str], Harness] | None = None,
) -> Apps:
    """`harnesses`: the `Harness` for an app's kind (default: the real adapters)."""
    return Apps(
        app,
        source or WorkingCopyOnly(),
        ReleaseStore(settings.releases, max_releases=settings.release_cache_max),
        harnesses or (lambda kind: harness_for(kind, settings)),
    )


@asynccontextmanager
async def open_runtime(
    app: HarnessApp,
    settings: Settings,
    model_env: dict[str, str],
    metering: Metering | None = None,
    releases: ReleaseSource | None = None,
    harnesses: Callable[[str], Harness] | None = None,
    clock: Clock = SYSTEM,
    model_access: AccessSource | None = None,
) -> AsyncIterator[Runtime]:
    """`releases`: where published releases come from (the control plane); without one every
    session runs `app`, the served folder. `harnesses` and `clock` replace the real harness
    adapters and time (an in-process `karta.testing.FakeHarness`, a `FakeClock`).
    `model_access`: the organizations' own provider keys (BYOK), which the model proxy prefers
    to the platform's."""
    coordinator = coordinator_for(settings)
    settings.home.mkdir(parents=True, exist_ok=True)
    engine = store.create_engine(settings.db_url, in_place=True)
    try:
        await store.migrate(engine, MIGRATIONS)
        async with open_isolation(settings, model_env, model_access) as isolation:
            runtime = Runtime(
                settings,
                store.sessionmaker(engine),
                apps_for(app, settings, releases, harnesses),
                isolation,
                metering,
                clock,
                coordinator,
            )
            await runtime.start()
            try:
                yield runtime
            finally:
                await runtime.stop()
    finally:
        await engine.dispose()
