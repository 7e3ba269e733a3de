"""Build a running `Runtime` from settings: storage, migrations, the app's harness."""

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
from karta.runtime.metering import Metering
from karta.runtime.service import Runtime
from karta.store import db as store


def harness_for(app: HarnessApp, settings: Settings) -> Harness:
    if app.harness == CLAUDE_CODE:
        return ClaudeCodeHarness(settings.home, max_retries=settings.harness_max_retries)
    if app.harness == OPENCODE:
        return OpenCodeHarness(settings.home)
    raise AppConfigError(f"unsupported harness {app.harness!r}")


@asynccontextmanager
async def open_runtime(
    app: HarnessApp,
    settings: Settings,
    model_env: dict[str, str],
    metering: Metering | None = None,
) -> AsyncIterator[Runtime]:
    settings.home.mkdir(parents=True, exist_ok=True)
    engine = store.create_engine(settings.db_url)
    try:
        await store.migrate(engine)
        runtime = Runtime(
            settings,
            store.sessionmaker(engine),
            app,
            harness_for(app, settings),
            model_env,
            metering,
        )
        await runtime.start()
        try:
            yield runtime
        finally:
            await runtime.stop()
    finally:
        await engine.dispose()
