"""The control-plane application factory: its own database, the management API, and the
internal API the data plane calls."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from karta import __version__, web
from karta.controlplane import timekeeping
from karta.controlplane.bootstrap import ensure_local
from karta.controlplane.notify import DataPlanes
from karta.controlplane.releases import ArtifactStore
from karta.controlplane.routes import (
    account,
    audit,
    embed_keys,
    internal,
    invitations,
    keys,
    members,
    money,
    projects,
    provider_keys,
    releases,
)
from karta.controlplane.secretbox import SecretBox
from karta.controlplane.settings import ControlSettings
from karta.core import db as store
from karta.core import http_errors, http_limits
from karta.core.clock import SYSTEM, Clock
from karta.core.http_warmup import warm_routes
from karta.core.money import PriceBook

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def create_control_app(settings: ControlSettings, clock: Clock = SYSTEM) -> FastAPI:
    """`clock` governs expiry and periods (tokens, invitations, budget months)."""
    prices = PriceBook.load()  # a bad price book or secrets key fails here, before binding
    box = SecretBox.load(settings.secrets_key, settings.home, settings.secrets_keys)

    @asynccontextmanager
    async def lifespan(api: FastAPI) -> AsyncIterator[None]:
        (settings.artifacts / "tmp").mkdir(parents=True, exist_ok=True)
        engine = store.create_engine(settings.db_url, serialized_writes=True)
        planes = DataPlanes(settings.data_plane_urls, settings.internal.outbound_token)
        try:
            await store.migrate(engine, MIGRATIONS)
            api.state.db = store.sessionmaker(engine)
            # Transactions that only read: they take no write lock (`core.db.reader`).
            api.state.reads = store.sessionmaker(store.reader(engine))
            for maker in (api.state.db, api.state.reads):
                timekeeping.bind(maker, clock)
            api.state.planes = planes
            if settings.local is not None:
                api.state.local_key = await ensure_local(
                    api.state.db, settings.home, settings.local
                )
            await warm_routes(api)
            yield
        finally:
            await planes.close()
            await engine.dispose()

    api = FastAPI(
        title="Karta control plane",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    api.state.settings = settings
    api.state.prices = prices
    api.state.internal_access = settings.internal
    api.state.secretbox = box
    api.state.artifacts = ArtifactStore(settings.artifacts)
    http_errors.install(api)
    http_limits.install(api, settings.limits, self_bounded=[releases.UPLOAD])
    web.install_docs(api)

    @api.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @api.get("/readyz", include_in_schema=False)
    async def readyz() -> dict[str, str]:
        return {"status": "ready"}

    modules = (
        account,
        members,
        invitations,
        keys,
        provider_keys,
        projects,
        embed_keys,
        releases,
        money,
        audit,
    )
    for module in (*modules, internal):
        api.include_router(module.router)
    return api
