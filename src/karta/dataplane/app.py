"""The data-plane application factory: storage, identity, runtime and routers, wired once."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI

from karta import __version__
from karta.app import HarnessApp, load_app
from karta.config import Settings
from karta.dataplane import errors
from karta.dataplane.auth import KeyCache
from karta.dataplane.routes import health, sessions, turns
from karta.runtime.factory import open_runtime
from karta.serve_state import Credentials, ensure_credentials


@dataclass(frozen=True)
class Ready:
    """What the server knows once it is up, for the start-up banner."""

    app: HarnessApp
    credentials: Credentials | None


def create_app(
    app_dir: str | Path,
    settings: Settings,
    model_env: dict[str, str],
    *,
    public_url: str = "http://127.0.0.1:8000",
    on_ready: Callable[[Ready], None] | None = None,
) -> FastAPI:
    harness_app = load_app(app_dir)  # fail fast, before binding a port

    @asynccontextmanager
    async def lifespan(api: FastAPI) -> AsyncIterator[None]:
        async with open_runtime(harness_app, settings, model_env) as runtime:
            api.state.db = runtime.db
            api.state.runtime = runtime
            credentials = None
            if not settings.open_auth:
                credentials = await ensure_credentials(runtime.db, settings.home, public_url)
            if on_ready is not None:
                on_ready(Ready(harness_app, credentials))
            yield

    api = FastAPI(title="Karta data plane", version=__version__, lifespan=lifespan)
    api.state.settings = settings
    api.state.key_cache = KeyCache()
    errors.install(api)
    api.include_router(health.router)
    api.include_router(sessions.router)
    api.include_router(turns.router)
    return api
