"""An in-process control plane (the real app and its lifespan, on SQLite or PostgreSQL, on a
`FakeClock` that starts at the real time and moves only when a test advances it) with helpers
to sign up organizations and act as their members, keys and the data plane."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from karta.controlplane.app import create_control_app
from karta.controlplane.settings import ControlSettings
from karta.core.internal_auth import InternalAccess
from karta.testing import FakeClock
from tests.conftest import NO_PROVIDERS, Database

SERVICE_TOKEN = "svc-" + secrets.token_hex(8)
TOKEN_SECRET = secrets.token_hex(32)


@dataclass
class Org:
    id: int
    slug: str
    owner_email: str
    admin_key: str
    admin_key_id: int
    owner: dict[str, str] = field(default_factory=dict)  # the owner's login headers

    def bearer(self, credential: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {credential}"}

    @property
    def admin(self) -> dict[str, str]:
        return self.bearer(self.admin_key)


class ControlPlane:
    def __init__(self, client: httpx.AsyncClient, app: Any, clock: FakeClock) -> None:
        self.client = client
        self.app = app
        self.clock = clock
        self.service = {"Authorization": f"Bearer {SERVICE_TOKEN}"}

    async def signup(self, name: str | None = None) -> Org:
        name = name or f"org-{secrets.token_hex(3)}"
        email = f"{name}-owner@example.com"
        r = await self.client.post(
            "/v1/signup", json={"email": email, "password": "correct horse", "org_name": name}
        )
        assert r.status_code == 201, r.text
        body = r.json()
        slug = body["organization"]["slug"]
        token = await self.login(email)
        return Org(
            body["organization"]["id"],
            slug,
            email,
            body["secret"],
            body["api_key"]["id"],
            {"Authorization": f"Bearer {token}", "Karta-Org": slug},
        )

    async def login(self, email: str, password: str = "correct horse") -> str:
        r = await self.client.post("/v1/auth/login", json={"email": email, "password": password})
        assert r.status_code == 200, r.text
        return str(r.json()["token"])

    async def user(self, org: Org, role: str) -> dict[str, str]:
        """A new user with `role` in `org` (invited by the owner, accepted): their login
        headers."""
        email = f"{role}-{secrets.token_hex(3)}@example.com"
        r = await self.client.post(
            "/v1/signup", json={"email": email, "password": "correct horse", "org_name": "own"}
        )
        assert r.status_code == 201, r.text
        r = await self.client.post(
            "/v1/members", headers=org.owner, json={"email": email, "role": role}
        )
        assert r.status_code == 201, r.text
        token = {"Authorization": f"Bearer {await self.login(email)}"}
        r = await self.client.post(f"/v1/invitations/{r.json()['id']}/accept", headers=token)
        assert r.status_code == 200, r.text
        return {**token, "Karta-Org": org.slug}

    async def key(self, org: Org, *scopes: str, **limits: int) -> tuple[str, int]:
        r = await self.client.post(
            "/v1/keys", headers=org.admin, json={"name": "k", "scopes": list(scopes), **limits}
        )
        assert r.status_code == 201, r.text
        return r.json()["secret"], r.json()["api_key"]["id"]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def control(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ControlPlane]:
    db = Database(request.param)
    settings = ControlSettings(
        home=tmp_path,
        database_url=db.url,
        internal=InternalAccess.build([SERVICE_TOKEN]),
        session_token_secret=TOKEN_SECRET,
        # No test calls out: provider checks go to a closed loopback port, and endpoint URLs
        # are not resolved (the resolver is not on loopback).
        providers=NO_PROVIDERS,
        allow_private_endpoints=True,
    )
    clock = FakeClock(datetime.now(UTC))
    app = create_control_app(settings, clock)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://cp") as client:
                yield ControlPlane(client, app, clock)
    finally:
        db.drop()
