"""The data-plane application factory: storage, identity, runtime and routers, wired once."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI

from karta import __version__
from karta.app import HarnessApp, load_app
from karta.app.loader import CLAUDE_CODE
from karta.config import Settings
from karta.dataplane import errors
from karta.dataplane.auth import KeyCache
from karta.dataplane.routes import health, sessions, turns
from karta.errors import AppConfigError
from karta.harness.base import Harness
from karta.harness.claude_code import ClaudeCodeHarness
from karta.runtime.service import Runtime
from karta.serve_state import Credentials, ensure_credentials
from karta.store import db as store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Ready:
    """What the server knows once it is up, for the start-up banner."""

    app: HarnessApp
    credentials: Credentials | None


def harness_for(app: HarnessApp, settings: Settings) -> Harness:
    if app.harness == CLAUDE_CODE:
        return ClaudeCodeHarness(settings.home, max_retries=settings.harness_max_retries)
    raise AppConfigError(f"the {app.harness} harness is not supported by this Karta version yet")


def create_app(
    app_dir: str | Path,
    settings: Settings,
    model_env: dict[str, str],
    *,
    public_url: str = "http://127.0.0.1:8000",
    on_ready: Callable[[Ready], None] | None = None,
) -> FastAPI:
    harness_app = load_app(app_dir)  # fail fast, before binding a port
    harness = harness_for(harness_app, settings)

    @asynccontextmanager
    async def lifespan(api: FastAPI) -> AsyncIterator[None]:
        settings.home.mkdir(parents=True, exist_ok=True)
        engine = store.create_engine(settings.db_url)
        await store.migrate(engine)
        api.state.db = store.sessionmaker(engine)
        credentials = None
        if not settings.open_auth:
            credentials = await ensure_credentials(api.state.db, settings.home, public_url)
        runtime = Runtime(settings, api.state.db, harness_app, harness, model_env)
        await runtime.start()
        api.state.runtime = runtime
        if on_ready is not None:
            on_ready(Ready(harness_app, credentials))
        try:
            yield
        finally:
            await runtime.stop()
            await engine.dispose()

    api = FastAPI(title="Karta data plane", version=__version__, lifespan=lifespan)
    api.state.settings = settings
    api.state.key_cache = KeyCache()
    api.state.harness_available = Path(getattr(harness, "binary", "")).exists()
    errors.install(api)
    api.include_router(health.router)
    api.include_router(sessions.router)
    api.include_router(turns.router)
    return api
