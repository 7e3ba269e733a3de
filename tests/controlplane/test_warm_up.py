"""A plane prepares its routes before it takes traffic (`karta.core.http_warmup`): the first
request after a start does no preparation a later one would not. Counted, not timed: FastAPI
prepares an included router's routes through `_EffectiveRouteContext.from_api_route`, the
first time a request is matched against them."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from fastapi import APIRouter, FastAPI, routing

from karta.core.http_warmup import warm_routes

pytestmark = pytest.mark.skipif(
    not hasattr(routing, "_EffectiveRouteContext"),
    reason="this FastAPI prepares its routes when they are included",
)


@pytest.fixture
def prepared(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The paths of the routes prepared while the test runs."""
    seen: list[str] = []
    original = routing._EffectiveRouteContext.from_api_route

    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(kwargs["original_route"].path)
        return original(*args, **kwargs)

    monkeypatch.setattr(routing._EffectiveRouteContext, "from_api_route", counted)
    yield seen


def tiny_app() -> FastAPI:
    app, router = FastAPI(), APIRouter()

    @router.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    app.include_router(router, prefix="/v1")
    return app


async def first_request(app: FastAPI) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.get("/v1/items/7")


async def test_a_warmed_app_prepares_nothing_on_its_first_request(prepared):
    cold = tiny_app()
    assert (await first_request(cold)).json() == {"id": 7}
    assert prepared == ["/items/{item_id}"], "the probe sees preparation on a cold app"
    prepared.clear()
    warm = tiny_app()
    await warm_routes(warm)
    assert prepared == ["/items/{item_id}"]
    prepared.clear()
    assert (await first_request(warm)).json() == {"id": 7}
    assert prepared == []


async def test_the_control_plane_is_warm_when_it_starts_serving(control, prepared):
    org = await control.signup()
    assert (await control.client.get("/v1/keys", headers=org.admin)).status_code == 200
    assert prepared == []
