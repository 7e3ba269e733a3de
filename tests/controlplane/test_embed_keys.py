"""Embed keys through the management API: origins and themes validated, the identity secret
shown once, update, rotate and revoke audited, and another organization's keys out of reach;
and what the internal API tells the data plane about them."""

from __future__ import annotations

from typing import Any

import pytest

from tests.controlplane.conftest import SERVICE_TOKEN, ControlPlane, Org

SITE = "https://shop.example"
KEYS = "/v1/projects/bot/embed_keys"


@pytest.fixture
async def acme(control: ControlPlane) -> Org:
    org = await control.signup("acme")
    r = await control.client.post("/v1/projects", headers=org.admin, json={"slug": "bot"})
    assert r.status_code == 201, r.text
    return org


async def create(control: ControlPlane, org: Org, **fields: Any) -> dict[str, Any]:
    r = await control.client.post(
        KEYS, headers=org.admin, json={"name": "site", "allowed_origins": [SITE], **fields}
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


async def resolve(control: ControlPlane, key: str) -> dict[str, Any]:
    r = await control.client.post(
        "/internal/embed/keys/resolve",
        json={"embed_key": key},
        headers={"Authorization": f"Bearer {SERVICE_TOKEN}"},
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


async def test_a_key_is_created_with_its_identity_secret_shown_once(control, acme):
    created = await create(
        control,
        acme,
        allowed_origins=["https://Shop.Example:443", "http://localhost:3000", SITE],
        theme={"accent": "#0f766e", "radius": "12px", "font-family": "Inter, sans-serif"},
        anonymous_cost_limit_cents=500,
        anonymous_period="day",
    )
    key = created["embed_key"]
    assert key["key"].startswith("pk_live_") and len(key["key"]) == 40
    assert created["identity_secret"].startswith("whsec_id_")
    assert key["allowed_origins"] == [SITE, "http://localhost:3000"]  # canonical, one of each
    assert key["enabled"] and not key["hosted_page"] and key["allow_anonymous"]
    assert (key["anonymous_cost_limit_cents"], key["anonymous_period"]) == (500, "day")

    listed = (await control.client.get(KEYS, headers=acme.admin)).json()["data"]
    assert [k["id"] for k in listed] == [key["id"]]
    assert created["identity_secret"] not in str(listed)
    one = await control.client.get(f"{KEYS}/{key['id']}", headers=acme.admin)
    assert one.json() == key


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("allowed_origins", ["https://*.shop.example"]),
        ("allowed_origins", ["*"]),
        ("allowed_origins", ["https://shop.example/path"]),
        ("allowed_origins", ["ftp://shop.example"]),
        ("allowed_origins", ["shop.example"]),
        ("allowed_origins", ["https://user@shop.example"]),
        ("allowed_origins", [f"https://s{n}.example" for n in range(21)]),
        ("theme", {"accent": "red; background: url(https://evil.example/x)"}),
        ("theme", {"accent": "url(x)"}),
        ("theme", {"behaviour": "#fff"}),
        ("theme", {"accent": "</style><script>"}),
        ("theme", "dark"),
        ("anonymous_period", "week"),
        ("anonymous_cost_limit_cents", -1),
    ],
)
async def test_bad_origins_and_themes_are_422_naming_the_field(control, acme, field, value):
    r = await control.client.post(KEYS, headers=acme.admin, json={"name": "site", field: value})
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "validation_error"
    assert r.json()["fields"][0]["field"].startswith(field)


async def test_update_rotate_and_revoke_are_audited_and_seen_by_the_data_plane(control, acme):
    created = await create(control, acme)
    key_id, old = created["embed_key"]["id"], created["embed_key"]["key"]

    r = await control.client.patch(
        f"{KEYS}/{key_id}",
        headers=acme.admin,
        json={"enabled": False, "theme": {"accent": "#111111"}, "hosted_page": True},
    )
    assert r.status_code == 200, r.text
    assert r.json()["allowed_origins"] == [SITE]  # left out, left alone
    info = await resolve(control, old)
    assert info["found"] and info["enabled"] is False and info["hosted_page"] is True
    assert "identity_secret" not in info

    rotated = await control.client.post(f"{KEYS}/{key_id}/rotate", headers=acme.admin)
    assert rotated.status_code == 200
    new = rotated.json()["embed_key"]["key"]
    assert new != old and rotated.json()["identity_secret"] != created["identity_secret"]
    assert (await resolve(control, old)) == {"found": False}
    assert (await resolve(control, new))["embed_key_id"] == key_id

    revoked = await control.client.delete(f"{KEYS}/{key_id}", headers=acme.admin)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    assert (await resolve(control, new)) == {"found": False}

    audit = (await control.client.get("/v1/audit", headers=acme.admin)).json()["data"]
    actions = [e["action"] for e in audit if e["resource_type"] == "embed_key"]
    assert actions == [
        "embed_key.created",
        "embed_key.updated",
        "embed_key.rotated",
        "embed_key.revoked",
    ]
    assert all(created["identity_secret"] not in str(e["details"]) for e in audit)


async def test_another_organizations_keys_are_not_found(control, acme):
    created = await create(control, acme)
    key_id = created["embed_key"]["id"]
    other = await control.signup("globex")
    await control.client.post("/v1/projects", headers=other.admin, json={"slug": "bot"})

    assert (await control.client.get(KEYS, headers=other.admin)).json()["data"] == []
    for method, path in [
        ("GET", f"{KEYS}/{key_id}"),
        ("PATCH", f"{KEYS}/{key_id}"),
        ("POST", f"{KEYS}/{key_id}/rotate"),
        ("DELETE", f"{KEYS}/{key_id}"),
    ]:
        body = {} if method == "PATCH" else None
        r = await control.client.request(method, path, headers=other.admin, json=body)
        assert r.status_code == 404, (method, path, r.text)
        assert r.json()["error"] == "embed_key_not_found"
    still = await control.client.get(f"{KEYS}/{key_id}", headers=acme.admin)
    assert still.json()["revoked_at"] is None


async def test_cors_origins_are_the_union_of_the_live_keys(control, acme):
    first = await create(control, acme)
    await create(control, acme, allowed_origins=["http://localhost:3000"], hosted_page=True)
    await create(control, acme, allowed_origins=["https://off.example"], enabled=False)
    service = {"Authorization": f"Bearer {SERVICE_TOKEN}"}

    r = await control.client.get(
        "/internal/embed/origins", params={"project": "bot"}, headers=service
    )

    assert r.json() == {"origins": ["http://localhost:3000", SITE], "hosted_page": True}
    await control.client.delete(f"{KEYS}/{first['embed_key']['id']}", headers=acme.admin)
    r = await control.client.get(
        "/internal/embed/origins", params={"project": "bot"}, headers=service
    )
    assert r.json()["origins"] == ["http://localhost:3000"]
    page = await control.client.get("/internal/embed/hosted/acme/bot", headers=service)
    assert page.status_code == 200 and page.json()["project"]["organization"] == "acme"
    missing = await control.client.get("/internal/embed/hosted/acme/nope", headers=service)
    assert missing.status_code == 404


async def test_an_anonymous_users_turn_is_refused_once_the_key_cap_is_spent(control, acme):
    capped = (await create(control, acme, anonymous_cost_limit_cents=0))["embed_key"]
    free = (await create(control, acme))["embed_key"]
    service = {"Authorization": f"Bearer {SERVICE_TOKEN}"}

    def check(embed_key_id: int) -> dict[str, Any]:
        return {"organization_id": acme.id, "embed_key_id": embed_key_id}

    refused = await control.client.post(
        "/internal/budget/check", json=check(capped["id"]), headers=service
    )
    assert refused.status_code == 402
    assert refused.json()["reason"] == "anonymous_cost_limit"
    admitted = await control.client.post(
        "/internal/budget/check", json=check(free["id"]), headers=service
    )
    assert admitted.status_code == 200, admitted.text
