"""Signup, login, organizations and members: the identity rules and their error answers."""

from __future__ import annotations

import dataclasses

import httpx
import pytest

from karta.controlplane import throttle
from karta.controlplane.app import create_control_app
from tests.controlplane.conftest import ControlPlane


async def test_signup_answers(control: ControlPlane) -> None:
    c = control.client
    r = await c.post(
        "/v1/signup",
        json={"email": "Ada@Example.com", "password": "long enough", "org_name": "Ada"},
    )
    assert r.status_code == 201
    body = r.json()
    assert body["user"]["email"] == "ada@example.com"
    assert body["organization"]["slug"] == "ada"
    assert body["api_key"]["scopes"] == ["admin"]
    assert body["secret"].startswith("kt_live_") and len(body["secret"]) == 40
    assert body["api_key"]["prefix"] == body["secret"][:14]
    assert body["api_key"]["last4"] == body["secret"][-4:]
    # The secret is never shown again.
    keys = (await c.get("/v1/keys", headers={"Authorization": f"Bearer {body['secret']}"})).json()
    assert body["secret"] not in str(keys)
    r = await c.post(
        "/v1/signup", json={"email": "ada@example.com", "password": "long enough", "org_name": "X"}
    )
    assert r.status_code == 409 and r.json()["error"] == "email_taken"
    r = await c.post(
        "/v1/signup", json={"email": "not-an-email", "password": "short", "org_name": ""}
    )
    assert r.status_code == 422
    assert {f["field"] for f in r.json()["fields"]} == {"email", "password", "org_name"}
    # A second org with the same name gets a distinct slug.
    r = await c.post(
        "/v1/signup",
        json={"email": "bob@example.com", "password": "long enough", "org_name": "Ada"},
    )
    assert r.json()["organization"]["slug"] == "ada-2"


async def test_signup_can_be_turned_off(control: ControlPlane, tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = dataclasses.replace(
        control.app.state.settings, signup_enabled=False, home=tmp_path / "closed"
    )
    app = create_control_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://cp") as client:
            r = await client.post(
                "/v1/signup", json={"email": "a@b.co", "password": "long enough", "org_name": "A"}
            )
    assert r.status_code == 403 and r.json()["error"] == "signup_disabled"


async def test_login(control: ControlPlane) -> None:
    org = await control.signup()
    r = await control.client.post(
        "/v1/auth/login", json={"email": org.owner_email, "password": "wrong password"}
    )
    unknown = await control.client.post(
        "/v1/auth/login", json={"email": "ghost@example.com", "password": "wrong password"}
    )
    assert r.status_code == unknown.status_code == 401
    assert r.json() == unknown.json()
    r = await control.client.get("/v1/org", headers={"Authorization": "Bearer ktu_forged"})
    assert r.status_code == 401


async def test_organizations_and_the_org_header(control: ControlPlane) -> None:
    org = await control.signup()
    token = org.owner["Authorization"]
    r = await control.client.post(
        "/v1/orgs", headers={"Authorization": token}, json={"name": "Two"}
    )
    assert r.status_code == 201 and r.json()["role"] == "owner"
    orgs = (await control.client.get("/v1/orgs", headers={"Authorization": token})).json()["data"]
    assert [o["slug"] for o in orgs] == [org.slug, "two"]
    # Two organizations: management calls must say which.
    r = await control.client.get("/v1/keys", headers={"Authorization": token})
    assert r.status_code == 400 and r.json()["error"] == "organization_required"
    r = await control.client.get("/v1/org", headers={"Authorization": token, "Karta-Org": "two"})
    assert r.json()["slug"] == "two"
    # Keys have no organizations to list.
    r = await control.client.get("/v1/orgs", headers=org.admin)
    assert r.status_code == 403


async def test_owners_are_protected(control: ControlPlane) -> None:
    org = await control.signup()
    c = control.client
    owner_id = (await c.get("/v1/me", headers=org.owner)).json()["user"]["id"]
    r = await c.patch(f"/v1/members/{owner_id}", headers=org.owner, json={"role": "admin"})
    assert r.status_code == 409 and r.json()["error"] == "last_owner"
    r = await c.delete(f"/v1/members/{owner_id}", headers=org.owner)
    assert r.status_code == 409
    admin = await control.user(org, "admin")
    r = await c.patch(f"/v1/members/{owner_id}", headers=admin, json={"role": "viewer"})
    assert r.status_code == 403  # only owners unmake owners
    viewer = await control.user(org, "viewer")
    viewer_id = (await c.get("/v1/me", headers=viewer)).json()["user"]["id"]
    r = await c.patch(f"/v1/members/{viewer_id}", headers=admin, json={"role": "owner"})
    assert r.status_code == 403  # nor make them
    r = await c.patch(f"/v1/members/{viewer_id}", headers=org.owner, json={"role": "owner"})
    assert r.status_code == 200
    # With a second owner, the first may step down.
    r = await c.patch(f"/v1/members/{owner_id}", headers=org.owner, json={"role": "admin"})
    assert r.status_code == 200


async def test_password_guessing_is_throttled(control: ControlPlane) -> None:
    org = await control.signup()
    other = await control.signup()
    login = "/v1/auth/login"

    async def attempt(email: str, password: str) -> httpx.Response:
        return await control.client.post(login, json={"email": email, "password": password})

    for _ in range(throttle.MAX_PER_EMAIL - 1):
        assert (await attempt(org.owner_email, "wrong password")).status_code == 401
    # A success clears the count…
    assert (await attempt(org.owner_email, "correct horse")).status_code == 200
    for _ in range(throttle.MAX_PER_EMAIL):
        assert (await attempt(org.owner_email, "wrong password")).status_code == 401
    # …and past the limit even the right password waits.
    blocked = await attempt(org.owner_email, "correct horse")
    assert blocked.status_code == 429 and blocked.json()["error"] == "too_many_requests"
    assert 1 <= int(blocked.headers["Retry-After"]) <= throttle.WINDOW.total_seconds()
    # Another account is not affected.
    assert (await attempt(other.owner_email, "correct horse")).status_code == 200


async def test_one_ip_guessing_many_accounts_is_throttled(control: ControlPlane) -> None:
    org = await control.signup()
    elsewhere = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=control.app, client=("203.0.113.9", 4000)),
        base_url="http://cp",
    )

    async def attempt(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
        body = {"email": email, "password": password}
        return await client.post("/v1/auth/login", json=body)

    # Fewer failures per email than the email limit, but from one address in all.
    for n in range(throttle.MAX_PER_IP):
        r = await attempt(control.client, f"guess-{n}@example.com", "wrong password")
        assert r.status_code == 401, (n, r.text)
    blocked = await attempt(control.client, org.owner_email, "correct horse")
    assert blocked.status_code == 429 and blocked.json()["error"] == "too_many_requests"
    wait = int(blocked.headers["Retry-After"])
    assert 1 <= wait <= throttle.WINDOW.total_seconds()
    async with elsewhere:  # the same account from another address is not held up
        assert (await attempt(elsewhere, org.owner_email, "correct horse")).status_code == 200
    control.clock.advance(wait)  # once the oldest failure leaves the window, it may try again
    assert (await attempt(control.client, org.owner_email, "correct horse")).status_code == 200


@pytest.mark.parametrize("sub", ["a b", "-lead", "x" * 129, "é", "a/b"])
async def test_session_tokens_name_only_valid_end_users(control: ControlPlane, sub: str) -> None:
    org = await control.signup()
    await control.client.post("/v1/projects", headers=org.admin, json={"slug": "bot"})
    r = await control.client.post(
        "/v1/projects/bot/session_tokens", headers=org.admin, json={"sub": sub}
    )
    assert (r.status_code, r.json()["error"]) == (422, "invalid_end_user_id")
    ok = await control.client.post(
        "/v1/projects/bot/session_tokens", headers=org.admin, json={"sub": "user_42@acme"}
    )
    assert ok.status_code == 201, ok.text


async def test_a_key_shows_when_it_was_last_used(control: ControlPlane) -> None:
    """Calls with a key and the data plane's validations of it set `last_used_at`, at most
    once a minute (a busy key does not write on every call); a refused key records nothing."""
    org = await control.signup()
    secret, key_id = await control.key(org, "read")

    async def last_used() -> str | None:
        r = await control.client.get(f"/v1/keys/{key_id}", headers=org.admin)
        assert r.status_code == 200, r.text
        return r.json()["last_used_at"]

    assert await last_used() is None
    validate = {"headers": control.service, "json": {"key": secret}}
    r = await control.client.post("/internal/keys/validate", **validate)
    assert r.json()["api_key_id"] == key_id
    first = await last_used()
    assert first is not None
    control.clock.advance(30)
    assert (await control.client.get("/v1/projects", headers=org.bearer(secret))).status_code == 200
    assert await last_used() == first, "within the minute: not written again"
    control.clock.advance(31)
    assert (await control.client.get("/v1/projects", headers=org.bearer(secret))).status_code == 200
    later = await last_used()
    assert later is not None and later > first
    await control.client.delete(f"/v1/keys/{key_id}", headers=org.admin)
    control.clock.advance(120)
    r = await control.client.post("/internal/keys/validate", **validate)
    assert r.json()["valid"] is False
    assert await last_used() == later
