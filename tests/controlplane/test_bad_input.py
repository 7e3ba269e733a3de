"""Hostile input gets a JSON 4xx, never a 500: ids and numbers no column can hold, months
without a successor, text no encoder can write, and requests too large to hold."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import httpx
import pytest

from karta.controlplane.app import create_control_app
from karta.core.http_limits import Limits
from karta.releases.archive import pack_bytes
from tests.conftest import SUPPORT_BOT
from tests.controlplane.conftest import ControlPlane

HUGE = "64207746283703952888056250368"  # past 2**63: no driver takes it as a parameter


@pytest.mark.parametrize(
    ("method", "path", "body", "code"),
    [
        ("GET", f"/v1/keys/{HUGE}", None, "key_not_found"),
        ("GET", "/v1/keys/-3", None, "key_not_found"),
        ("GET", f"/v1/keys/{2**31}", None, "key_not_found"),  # past PostgreSQL's integer
        ("PATCH", f"/v1/keys/{HUGE}", {}, "key_not_found"),
        ("DELETE", f"/v1/keys/{HUGE}", None, "key_not_found"),
        ("PATCH", f"/v1/members/{HUGE}", {"role": "viewer"}, "member_not_found"),
        ("DELETE", f"/v1/members/{HUGE}", None, "member_not_found"),
        ("GET", f"/v1/projects/{HUGE}", None, "project_not_found"),
        ("GET", "/v1/projects/²", None, "project_not_found"),  # a digit int() refuses
        ("GET", f"/v1/projects/{'9' * 5000}", None, "project_not_found"),
        ("GET", f"/v1/projects/bot/releases/v{HUGE}", None, "not_found"),
        ("POST", "/v1/projects/bot/rollback", {"to": 0}, "not_found"),
        ("POST", "/v1/projects/bot/rollback", {"to": f"v{HUGE}"[:16]}, "not_found"),
    ],
)
async def test_ids_no_row_can_have_are_not_found(
    control: ControlPlane, method: str, path: str, body: dict | None, code: str
) -> None:
    org = await control.signup()
    await control.client.post("/v1/projects", headers=org.admin, json={"slug": "bot"})
    r = await control.client.request(method, path, headers=org.admin, json=body)
    assert r.status_code == 404, r.text
    assert r.json()["error"] == code


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/v1/audit?after=9294542258765327562178560", "after"),
        (f"/v1/audit?after={2**31}", "after"),
        ("/v1/audit?limit=9294542258765327562178560", "limit"),
        ("/v1/usage?period=9999-12", "period"),
    ],
)
async def test_numbers_out_of_range_are_a_422_naming_the_field(
    control: ControlPlane, path: str, field: str
) -> None:
    org = await control.signup()
    r = await control.client.get(path, headers=org.admin)
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["error"] == "validation_error" and [f["field"] for f in body["fields"]] == [field]


async def test_the_first_and_last_months_still_answer(control: ControlPlane) -> None:
    org = await control.signup()
    for period in ("0001-01", "9999-11"):
        r = await control.client.get(f"/v1/usage?period={period}", headers=org.admin)
        assert r.status_code == 200, r.text
        assert r.json()["period"]["start"] == f"{period}-01"


@pytest.mark.parametrize(
    ("path", "raw", "field"),
    [
        ("/v1/projects", rb'{"slug": "ok", "name": "\ud800"}', "name"),
        ("/v1/keys", rb'{"name": "k\udbff", "scopes": ["read"]}', "name"),
        (
            "/v1/signup",
            rb'{"email": "a@b.co", "password": "\udc00 long", "org_name": "A"}',
            "password",
        ),
    ],
)
async def test_lone_surrogates_are_a_422_naming_the_field(
    control: ControlPlane, path: str, raw: bytes, field: str
) -> None:
    org = await control.signup()
    headers = {**org.admin, "Content-Type": "application/json"}
    r = await control.client.post(path, headers=headers, content=raw)
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "validation_error"
    assert [f["field"] for f in r.json()["fields"]] == [field]


async def test_requests_too_large_to_hold(control: ControlPlane) -> None:
    # Unauthenticated routes too: the limits come before any credential is looked at.
    big = {"email": "a@b.co", "password": "x" * (1 << 20), "org_name": "A"}
    r = await control.client.post("/v1/signup", json=big)
    assert r.status_code == 413 and r.json()["error"] == "request_too_large"
    crowded = {f"x-filler-{n}": "v" for n in range(120)}
    r = await control.client.post("/v1/auth/login", headers=crowded, json={})
    assert r.status_code == 431 and r.json()["error"] == "headers_too_large"


async def test_the_release_upload_keeps_its_own_limit(
    control: ControlPlane, tmp_path: Path
) -> None:
    archive = pack_bytes(SUPPORT_BOT)
    settings = dataclasses.replace(
        control.app.state.settings,
        home=tmp_path / "small-limits",
        limits=Limits(max_body_bytes=len(archive) // 2),
    )
    app = create_control_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://cp") as c:
            signup = {"email": "a@b.co", "password": "long enough", "org_name": "A"}
            key = (await c.post("/v1/signup", json=signup)).json()["secret"]
            headers = {"Authorization": f"Bearer {key}"}
            r = await c.post("/v1/projects", headers=headers, json={"slug": "bot"})
            assert r.status_code == 201
            r = await c.post(
                "/v1/projects/bot/releases",
                headers={**headers, "Content-Type": "application/gzip"},
                content=archive,
            )
            assert r.status_code == 201, r.text
            r = await c.post(
                "/v1/projects", headers=headers, json={"slug": "x", "name": "n" * len(archive)}
            )
            assert r.status_code == 413
