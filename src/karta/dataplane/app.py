"""The data-plane application factory: storage, the control-plane client, auth, release
resolution, metering, runtime and routers, wired once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import async_sessionmaker

from karta import __version__, web
from karta.app import HarnessApp
from karta.core import http_errors, http_limits
from karta.core.clock import SYSTEM, Clock
from karta.core.http_warmup import warm_routes
from karta.dataplane import adapters
from karta.dataplane.auth import Authenticator, flat_principal, project_principal
from karta.dataplane.cluster import check_replica
from karta.dataplane.control.breaker import CircuitBreaker
from karta.dataplane.control.cache import CachedLookup, KeyCache
from karta.dataplane.control.client import ControlPlaneClient, ControlPlaneUnavailable
from karta.dataplane.control.model_access import ModelAccessSource
from karta.dataplane.control.readiness import ControlPlaneProbe
from karta.dataplane.control.releases import ControlPlaneReleases, LocalProject
from karta.dataplane.control.usage import ControlPlaneMetering
from karta.dataplane.cors import BrowserCORS
from karta.dataplane.embed import EmbedEdge
from karta.dataplane.gateway import Gateway
from karta.dataplane.harness.base import Harness
from karta.dataplane.routes import embed, gateway, health, internal, pages, sessions, turns
from karta.dataplane.runtime.factory import open_runtime
from karta.dataplane.sandbox.setup import choose_backend
from karta.dataplane.settings import ConfigError, Settings

log = logging.getLogger(__name__)

# What resolving the caller can answer, on top of each route's own errors.
FLAT_ERRORS = (401, 403, 503)
PROJECT_ERRORS = (401, 403, 404, 409, 503)
FINAL_FLUSH_TIMEOUT = 2.0


def control_client(
    settings: Settings, clock: Clock, transport: httpx.AsyncBaseTransport | None = None
) -> ControlPlaneClient | None:
    if settings.open_auth:
        return None
    if not settings.control_plane_url:
        raise ConfigError("KARTA_CONTROL_PLANE_URL is not set (or serve with --open)")
    if settings.internal.outbound_token is None:
        raise ConfigError("KARTA_SERVICE_TOKENS is not set: the control plane would refuse us")
    breaker = CircuitBreaker(settings.breaker_threshold, settings.breaker_window, clock)
    return ControlPlaneClient(
        settings.control_plane_url,
        settings.internal.outbound_token,
        breaker=breaker,
        transport=transport,
    )


def authenticator(
    settings: Settings, control: ControlPlaneClient | None, app: HarnessApp, clock: Clock
) -> Authenticator:
    ttl, stale = settings.key_cache_ttl, settings.key_cache_stale
    return Authenticator(
        control,
        KeyCache(
            ttl=ttl,
            stale=stale,
            max_entries=settings.key_cache_max,
            negative_flush_interval=settings.negative_flush_interval,
            clock=clock,
        ),
        CachedLookup(ttl=ttl, stale=stale, max_entries=settings.key_cache_max, clock=clock),
        session_secret=settings.session_token_secret,
        open_auth=settings.open_auth,
        open_project=settings.local_project or app.name,
    )


def embed_edge(settings: Settings, control: ControlPlaneClient | None, clock: Clock) -> EmbedEdge:
    return EmbedEdge(
        control,
        ttl=settings.key_cache_ttl,
        stale=settings.key_cache_stale,
        max_entries=settings.key_cache_max,
        rate_limit=settings.embed_rate_limit,
        rate_window=settings.embed_rate_window,
        clock=clock,
    )


def release_source(
    settings: Settings, control: ControlPlaneClient | None, clock: Clock
) -> ControlPlaneReleases:
    local = None
    if settings.local_project is not None:
        local = LocalProject(settings.local_organization, settings.local_project)
    return ControlPlaneReleases(
        control,
        ttl=settings.active_release_ttl,
        stale=settings.key_cache_stale,
        max_entries=settings.key_cache_max,
        local=local,
        clock=clock,
    )


def create_app(
    harness_app: HarnessApp,
    settings: Settings,
    model_env: dict[str, str],
    *,
    clock: Clock = SYSTEM,
    control_transport: httpx.AsyncBaseTransport | None = None,
    harnesses: Callable[[str], Harness] | None = None,
) -> FastAPI:
    """`clock` drives the caches, the breaker and the shipper; `control_transport` carries the
    calls to the control plane (tests put an in-process one with injected faults there);
    `harnesses` replaces the real harness adapters (a `karta.testing.FakeHarness`)."""
    control = control_client(settings, clock, control_transport)  # fail fast, before binding
    choose_backend(settings)  # likewise: a refused sandbox choice stops the start here
    check_replica(settings)  # and a replica the others could not reach
    metering = ControlPlaneMetering(control, clock=clock) if control is not None else None
    releases = release_source(settings, control, clock)
    model_access = ModelAccessSource(
        control, ttl=settings.byok_cache_ttl, max_entries=settings.key_cache_max, clock=clock
    )

    @asynccontextmanager
    async def lifespan(api: FastAPI) -> AsyncIterator[None]:
        try:
            async with open_runtime(
                harness_app,
                settings,
                model_env,
                metering,
                releases,
                harnesses,
                model_access=model_access,
            ) as runtime:
                api.state.db = runtime.db
                api.state.runtime = runtime
                api.state.gateway = relay = Gateway(runtime, api.state.auth.project)
                shipper = asyncio.create_task(metering.run(runtime.db)) if metering else None
                relaying = asyncio.create_task(relay.run())
                try:
                    await warm_routes(api)
                    yield
                finally:
                    relaying.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await relaying
                    await relay.close()
                    if shipper is not None and metering is not None:
                        shipper.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await shipper
                        await _final_flush(metering, runtime.db)
        finally:
            if control is not None:
                await control.close()

    api = FastAPI(
        title="Karta data plane",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    api.state.settings = settings
    api.state.internal_access = settings.internal
    api.state.auth = authenticator(settings, control, harness_app, clock)
    api.state.releases = releases
    api.state.model_access = model_access
    api.state.metering = metering
    api.state.control_probe = ControlPlaneProbe(control, clock=clock) if control else None
    api.state.embed = embed_edge(settings, control, clock)
    http_errors.install(api)
    http_limits.install(api, http_limits.Limits.from_env(http_limits.DATA_PLANE))
    api.add_middleware(BrowserCORS, edge=api.state.embed)  # outermost: limits' refusals too
    web.install_docs(api)
    api.include_router(health.router)
    api.include_router(internal.router)
    api.include_router(gateway.router)
    api.include_router(embed.router)
    for resolve, prefix, family_errors in (
        (flat_principal, "/v1", FLAT_ERRORS),
        (project_principal, "/v1/projects/{ref}", PROJECT_ERRORS),
    ):
        api.include_router(sessions.session_routes(resolve, errors=family_errors), prefix=prefix)
        api.include_router(turns.turn_routes(resolve, errors=family_errors), prefix=prefix)
    for router in adapters.routers(project_principal, errors=PROJECT_ERRORS):
        api.include_router(router, prefix="/v1/projects/{ref}")
    api.include_router(pages.router)  # last: `/{org}/{project}` must not shadow an API route
    return api


async def _final_flush(metering: ControlPlaneMetering, db: async_sessionmaker) -> None:
    """Best effort on shutdown; whatever is left ships on the next start."""
    try:
        await asyncio.wait_for(metering.drain(db), FINAL_FLUSH_TIMEOUT)
    except (ControlPlaneUnavailable, TimeoutError):
        log.info("usage left in the outbox ships on the next start")
