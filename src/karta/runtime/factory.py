"""Build a running `Runtime` from settings: storage, migrations, the apps it serves and their
harnesses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from karta.app import HarnessApp
from karta.app.loader import CLAUDE_CODE, OPENCODE
from karta.config import Settings
from karta.errors import AppConfigError
from karta.harness.base import Harness
from karta.harness.claude_code import ClaudeCodeHarness
from karta.harness.opencode import OpenCodeHarness
from karta.releases.store import ReleaseStore
from karta.runtime.apps import Apps, ReleaseSource, WorkingCopyOnly
from karta.runtime.metering import Metering
from karta.runtime.service import Runtime
from karta.sandbox.setup import open_isolation
from karta.store import db as store


def harness_for(kind: str, settings: Settings) -> Harness:
    if kind == CLAUDE_CODE:
        return ClaudeCodeHarness(settings.home, max_retries=settings.harness_max_retries)
    if kind == OPENCODE:
        return OpenCodeHarness(settings.home)
    raise AppConfigError(f"unsupported harness {kind!r}")


def apps_for(app: HarnessApp, settings: Settings, source: ReleaseSource | None = None) -> Apps:
    return Apps(
        app,
        source or WorkingCopyOnly(),
        ReleaseStore(settings.releases, max_releases=settings.release_cache_max),
        lambda kind: harness_for(kind, settings),
    )


@asynccontextmanager
async def open_runtime(
    app: HarnessApp,
    settings: Settings,
    model_env: dict[str, str],
    metering: Metering | None = None,
    releases: ReleaseSource | None = None,
) -> AsyncIterator[Runtime]:
    """`releases`: where published releases come from (the control plane); without one every
    session runs `app`, the served folder."""
    settings.home.mkdir(parents=True, exist_ok=True)
    engine = store.create_engine(settings.db_url)
    try:
        await store.migrate(engine)
        async with open_isolation(settings, model_env) as isolation:
            runtime = Runtime(
                settings,
                store.sessionmaker(engine),
                apps_for(app, settings, releases),
                isolation,
                metering,
            )
            await runtime.start()
            try:
                yield runtime
            finally:
                await runtime.stop()
    finally:
        await engine.dispose()
