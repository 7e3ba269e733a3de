"""The embed edge on the data plane, against the real control plane: a page's config and its
session tokens by the real `Origin`, verified and anonymous end users, the rate limit, CORS on
the browser-facing routes, the hosted page, and the widget and /docs assets served locally."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from karta import web
from karta.core.embed import identity_token
from karta.releases.archive import pack_bytes
from karta.testing import FakeClock
from tests.conftest import SUPPORT_BOT
from tests.unit.control_plane_double import SERVICE_TOKEN, ControlPlaneDouble, Tenant, data_plane

SHOP = "https://shop.example"
EVIL = "https://evil.example"
OWN = "http://data"  # the data plane's own origin, as the test client reaches it


@pytest.fixture
async def acme(control: ControlPlaneDouble) -> Tenant:
    tenant = await control.signup("acme")
    await control.project(tenant, "bot")
    await control.publish(tenant, "bot", pack_bytes(SUPPORT_BOT))
    return tenant


async def embed_key(control: ControlPlaneDouble, tenant: Tenant, **fields: Any) -> dict[str, Any]:
    body = {"name": "site", "allowed_origins": [SHOP], **fields}
    r = await control.manage.post("/v1/projects/bot/embed_keys", headers=tenant.admin, json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def push(data: httpx.AsyncClient, tenant: Tenant) -> dict[str, Any]:
    """The invalidation the control plane pushes after a change (the double has no planes)."""
    r = await data.post(
        "/v1/internal/cache/invalidate",
        json={"organization_id": tenant.id},
        headers={"Authorization": f"Bearer {SERVICE_TOKEN}"},
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


@pytest.fixture
async def data(
    control: ControlPlaneDouble, tmp_path: Path, clock: FakeClock
) -> AsyncIterator[httpx.AsyncClient]:
    async with data_plane(
        control, tmp_path / "data", clock, embed_rate_limit=5, embed_rate_window=60.0
    ) as (_, client):
        yield client


async def mint(data: httpx.AsyncClient, page: str | None, **body: Any) -> httpx.Response:
    """A browser on `page` (an origin; None: no Origin header) asks for a token."""
    headers = {"Origin": page} if page else {}
    return await data.post("/v1/embed/session-tokens", json=body, headers=headers)


async def test_a_page_gets_its_config_and_nothing_else(data, control, acme):
    created = await embed_key(control, acme, theme={"accent": "#0f766e"})
    pk = created["embed_key"]["key"]

    r = await data.get("/v1/embed/config", params={"embed_key": pk}, headers={"Origin": SHOP})

    assert r.status_code == 200, r.text
    assert r.json() == {
        "object": "embed_config",
        "project": {"organization": "acme", "slug": "bot", "name": "bot"},
        "theme": {"accent": "#0f766e"},
        "flags": {"anonymous": True, "hosted_page": False},
    }
    assert "allowed_origins" not in r.text and created["identity_secret"] not in r.text
    assert r.headers["access-control-allow-origin"] == SHOP
    assert "origin" in r.headers["vary"].lower()
    by_header = await data.get(
        "/v1/embed/config", headers={"Origin": SHOP, "X-Karta-Embed-Key": pk}
    )
    assert by_header.status_code == 200


async def test_the_origin_is_the_real_header_never_the_body(data, control, acme):
    pk = (await embed_key(control, acme))["embed_key"]["key"]

    missing = await mint(data, None, embed_key=pk)
    assert missing.status_code == 400 and missing.json()["error"] == "missing_origin"
    refused = await mint(data, EVIL, embed_key=pk)
    assert refused.status_code == 403 and refused.json()["error"] == "origin_not_allowed"
    # The page can read why: the embed edge answers every origin with CORS headers.
    assert refused.headers["access-control-allow-origin"] == EVIL
    named = await mint(data, EVIL, embed_key=pk, origin=SHOP)
    assert named.status_code == 422 and named.json()["fields"][0]["field"] == "origin"
    config = await data.get("/v1/embed/config", params={"embed_key": pk}, headers={"Origin": EVIL})
    assert config.status_code == 403 and config.json()["error"] == "origin_not_allowed"
    unknown = await mint(data, SHOP, embed_key="pk_live_" + "0" * 32)
    assert unknown.status_code == 404 and unknown.json()["error"] == "embed_key_not_found"


async def test_anonymous_browsers_keep_their_id_and_only_their_sessions(data, control, acme):
    pk = (await embed_key(control, acme))["embed_key"]["key"]

    first = await mint(data, SHOP, embed_key=pk)
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["verified"] is False and body["sub"] == f"anon:{body['anonymous_id']}"
    again = (await mint(data, SHOP, embed_key=pk, anonymous_id=body["anonymous_id"])).json()
    assert again["sub"] == body["sub"]

    token = {"Authorization": f"Bearer {body['token']}"}
    session = await data.post("/v1/projects/bot/sessions", json={}, headers=token)
    assert session.status_code == 201, session.text
    assert session.json()["metadata"] == {"user_id": body["sub"]}
    stranger = (await mint(data, SHOP, embed_key=pk)).json()
    theirs = {"Authorization": f"Bearer {stranger['token']}"}
    sid = session.json()["id"]
    assert (await data.get(f"/v1/projects/bot/sessions/{sid}", headers=theirs)).status_code == 404
    listed = await data.get("/v1/projects/bot/sessions", headers=theirs)
    assert listed.json()["data"] == []
    bad = await mint(data, SHOP, embed_key=pk, anonymous_id="short")
    assert bad.status_code == 422 and bad.json()["error"] == "invalid_anonymous_id"


async def test_verified_users_need_a_matching_identity_token(data, control, acme):
    created = await embed_key(control, acme)
    pk, secret = created["embed_key"]["key"], created["identity_secret"]

    ok = await mint(
        data, SHOP, embed_key=pk, user_id="u-42", identity_token=identity_token(secret, "u-42")
    )
    assert ok.status_code == 201, ok.text
    assert ok.json()["sub"] == "u-42" and ok.json()["verified"] is True
    forged = await mint(
        data, SHOP, embed_key=pk, user_id="u-43", identity_token=identity_token(secret, "u-42")
    )
    assert forged.status_code == 403 and forged.json()["error"] == "identity_invalid"
    alone = await mint(data, SHOP, embed_key=pk, user_id="u-42")
    assert alone.status_code == 403 and alone.json()["error"] == "identity_invalid"
    # No verified id can take the anonymous namespace, even signed with the real secret.
    anon = "anon:" + "a" * 24
    squat = await mint(
        data, SHOP, embed_key=pk, user_id=anon, identity_token=identity_token(secret, anon)
    )
    assert squat.status_code == 422 and squat.json()["error"] == "invalid_end_user_id"

    verified = {"Authorization": f"Bearer {ok.json()['token']}"}
    sid = (await data.post("/v1/projects/bot/sessions", json={}, headers=verified)).json()["id"]
    anonymous = (await mint(data, SHOP, embed_key=pk, anonymous_id="u-42" + "x" * 14)).json()
    theirs = {"Authorization": f"Bearer {anonymous['token']}"}
    assert (await data.get(f"/v1/projects/bot/sessions/{sid}", headers=theirs)).status_code == 404
    claim = await data.post(
        "/v1/projects/bot/sessions", json={"metadata": {"user_id": "u-42"}}, headers=theirs
    )
    assert claim.status_code == 403 and claim.json()["error"] == "identity_mismatch"


async def test_keys_that_only_admit_verified_users_or_are_disabled(data, control, acme):
    created = await embed_key(control, acme, allow_anonymous=False)
    pk = created["embed_key"]["key"]
    r = await mint(data, SHOP, embed_key=pk)
    assert r.status_code == 403 and r.json()["error"] == "anonymous_not_allowed"

    disabled = (await embed_key(control, acme, enabled=False))["embed_key"]["key"]
    r = await mint(data, SHOP, embed_key=disabled)
    assert r.status_code == 403 and r.json()["error"] == "key_disabled"


async def test_the_anonymous_spend_cap_refuses_anonymous_tokens_not_verified_ones(
    data, control, acme
):
    created = await embed_key(control, acme, anonymous_cost_limit_cents=0)
    pk, secret = created["embed_key"]["key"], created["identity_secret"]

    r = await mint(data, SHOP, embed_key=pk)
    assert r.status_code == 402
    assert r.json()["error"] == "budget_exhausted"
    verified = await mint(
        data, SHOP, embed_key=pk, user_id="u-1", identity_token=identity_token(secret, "u-1")
    )
    assert verified.status_code == 201


async def test_the_rate_limit_is_per_client_and_origin_with_retry_after(data, control, acme, clock):
    pk = (await embed_key(control, acme, allowed_origins=[SHOP, EVIL]))["embed_key"]["key"]
    for _ in range(5):
        assert (await mint(data, SHOP, embed_key=pk)).status_code == 201

    limited = await mint(data, SHOP, embed_key=pk)

    assert limited.status_code == 429
    assert limited.json()["error"] == "rate_limited"
    assert int(limited.headers["retry-after"]) == limited.json()["retry_after_seconds"] > 0
    assert limited.headers["access-control-expose-headers"].startswith("Retry-After")
    assert (await mint(data, EVIL, embed_key=pk)).status_code == 201  # another origin's window
    clock.advance(60)
    assert (await mint(data, SHOP, embed_key=pk)).status_code == 201


async def test_cors_on_project_routes_echoes_only_allowed_origins(data, control, acme):
    await embed_key(control, acme)
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x"}

    ok = await data.options("/v1/projects/bot/sessions", headers={"Origin": SHOP, **preflight})
    assert ok.status_code == 204
    assert ok.headers["access-control-allow-origin"] == SHOP
    assert "POST" in ok.headers["access-control-allow-methods"]
    assert "authorization" in ok.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-credentials" not in ok.headers
    refused = await data.options("/v1/projects/bot/sessions", headers={"Origin": EVIL, **preflight})
    assert refused.status_code == 204 and "access-control-allow-origin" not in refused.headers
    # Errors carry the headers too, so the page can read them; never credentials.
    error = await data.get("/v1/projects/bot/sessions", headers={"Origin": SHOP})
    assert error.status_code == 401
    assert error.headers["access-control-allow-origin"] == SHOP
    assert "access-control-allow-credentials" not in error.headers
    assert "origin" in error.headers["vary"].lower()
    # Other projects and the server-to-server routes are not for browsers.
    other = await data.options("/v1/projects/nope/sessions", headers={"Origin": SHOP, **preflight})
    assert "access-control-allow-origin" not in other.headers
    flat = await data.get("/v1/sessions", headers={"Origin": SHOP})
    assert "access-control-allow-origin" not in flat.headers


async def test_changes_reach_the_data_plane_with_the_push(data, control, acme):
    created = await embed_key(control, acme)
    pk, key_id = created["embed_key"]["key"], created["embed_key"]["id"]
    assert (await mint(data, SHOP, embed_key=pk)).status_code == 201
    config = await data.get("/v1/embed/config", params={"embed_key": pk}, headers={"Origin": SHOP})
    assert config.status_code == 200
    r = await control.manage.delete(f"/v1/projects/bot/embed_keys/{key_id}", headers=acme.admin)
    assert r.status_code == 200 and r.json()["revoked_at"]

    svc = {"Authorization": "Bearer svc-unit-tests"}
    pushed = await data.post(
        "/v1/internal/cache/invalidate", json={"organization_id": acme.id}, headers=svc
    )
    assert pushed.json()["embed_evicted"] >= 1

    config = await data.get("/v1/embed/config", params={"embed_key": pk}, headers={"Origin": SHOP})
    assert config.status_code == 404 and config.json()["error"] == "embed_key_not_found"
    assert (await mint(data, SHOP, embed_key=pk)).status_code == 404


async def test_the_hosted_page_serves_the_widget_with_its_own_origin(data, control, acme):
    assert (await data.get("/acme/bot")).status_code == 404
    created = await embed_key(control, acme, hosted_page=True, theme={"background": "#fafaf9"})
    pk = created["embed_key"]["key"]
    await push(data, acme)

    page = await data.get("/acme/bot")

    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert f'embed-key="{pk}"' in page.text and 'project="acme/bot"' in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    own = await mint(data, OWN, embed_key=pk)
    assert own.status_code == 201, own.text
    preflight = {"Origin": OWN, "Access-Control-Request-Method": "POST"}
    assert (await data.options("/v1/projects/bot/sessions", headers=preflight)).headers[
        "access-control-allow-origin"
    ] == OWN


@pytest.mark.skipif(not (web.DIST / "karta.js").is_file(), reason="scripts/build-widget not run")
async def test_the_widget_and_the_api_explorer_are_served_locally(data):
    widget = await data.get("/widget/v1/karta.js")
    assert widget.status_code == 200 and "karta-chat" in widget.text
    assert widget.headers["content-type"].startswith("text/javascript")
    assert (await data.get("/widget/v1/client.mjs")).status_code == 200
    assert (await data.get("/widget/v1/secrets.txt")).status_code == 404
    docs = await data.get("/docs")
    assert docs.status_code == 200
    assert "/docs/assets/swagger-ui-bundle.js" in docs.text and "cdn" not in docs.text.lower()
    assert "https://" not in docs.text
    assert (await data.get("/docs/assets/swagger-ui-bundle.js")).status_code == 200
    assert (await data.get("/docs/assets/swagger-ui.css")).status_code == 200
