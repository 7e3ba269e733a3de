"""The real control plane as the data plane's counterpart in unit tests: its FastAPI app and
lifespan on a throwaway SQLite database, seeded through its own management API, reached through
an httpx transport that fails the way networks and sick servers do.

What the data plane hears is therefore what a control plane of this very commit answers, so
the data plane's tests exercise the contract (`karta.core.internal_api`) instead of a hand-written
imitation of it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from karta.app import load_app
from karta.controlplane.app import create_control_app
from karta.controlplane.models import UsageEvent
from karta.controlplane.settings import ControlSettings
from karta.core.clock import SYSTEM, Clock
from karta.core.internal_auth import InternalAccess
from karta.dataplane.app import create_app
from karta.dataplane.control.breaker import CircuitBreaker
from karta.dataplane.control.client import TIMEOUT, ControlPlaneClient
from karta.dataplane.settings import Settings
from tests.conftest import NO_PROVIDERS, SUPPORT_BOT

SERVICE_TOKEN = "svc-unit-tests"
SESSION_SECRET = "session-secret-of-the-unit-tests-32b"
URL = "http://control"


def key(n: int) -> str:
    """A well-formed API key that no control plane ever issued."""
    return f"kt_live_{n:032d}"


class FaultTransport(httpx.AsyncBaseTransport):
    """Forwards calls to an ASGI app unless a fault says otherwise. Faults can be set or
    cleared at any moment:

    - `down`: every call fails to connect, like a dead host (connection refused);
    - `delay`: every call takes this long, and one that outlasts its read timeout fails with
      `ReadTimeout`, as on a network (httpx enforces no timeout on a custom transport);
    - `status`: every call is answered with this status (500, 503) without reaching the app;
    - `poison`: event ids the control plane refuses as malformed: the transport breaks these
      events on the wire, so the 422 is the app's own;
    - `hold()` / `release()`: calls wait at a gate until released (`wait_held` waits for them).

    `calls` lists the path of every call, failed ones included.
    """

    def __init__(self, app: FastAPI) -> None:
        self._app = httpx.ASGITransport(app=app)
        self.calls: list[str] = []
        self.down = False
        self.delay = 0.0
        self.status: int | None = None
        self.poison: set[str] = set()
        self._gate: asyncio.Event | None = None
        self._held = 0
        self._arrivals = asyncio.Condition()

    def hold(self) -> None:
        self._gate = asyncio.Event()

    def release(self) -> None:
        if self._gate is not None:
            self._gate.set()
        self._gate = None

    async def wait_held(self, count: int = 1) -> None:
        async with self._arrivals:
            await self._arrivals.wait_for(lambda: self._held >= count)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request.url.path)
        if self._gate is not None:
            await self._wait_at(self._gate)
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        if self.delay:
            await self._slow(request)
        if self.status is not None:
            body = {"error": "unavailable", "message": "an injected fault"}
            return httpx.Response(self.status, json=body, request=request)
        if self.poison:
            request = await self._poisoned(request)
        return await self._app.handle_async_request(request)

    async def _wait_at(self, gate: asyncio.Event) -> None:
        async with self._arrivals:
            self._held += 1
            self._arrivals.notify_all()
        try:
            await gate.wait()
        finally:
            self._held -= 1

    async def _slow(self, request: httpx.Request) -> None:
        timeout = request.extensions.get("timeout", {}).get("read")
        if timeout is not None and self.delay >= timeout:
            await asyncio.sleep(timeout)
            raise httpx.ReadTimeout("timed out", request=request)
        await asyncio.sleep(self.delay)

    async def _poisoned(self, request: httpx.Request) -> httpx.Request:
        body = json.loads(await request.aread() or b"null")
        events = body.get("events") if isinstance(body, dict) else None
        if not events or not any(e.get("event_id") in self.poison for e in events):
            return request
        for event in events:
            if event.get("event_id") in self.poison:
                event["occurred_at"] = "not a time"
        headers = [(k, v) for k, v in request.headers.raw if k.lower() != b"content-length"]
        return httpx.Request(request.method, request.url, headers=headers, json=body)


@dataclass(frozen=True)
class Tenant:
    """An organization, with the admin key its signup made."""

    id: int
    slug: str
    admin_key: str
    admin_key_id: int

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_key}"}


class ControlPlaneDouble:
    """A running control plane. `manage` calls its management API directly (never faulty);
    data-plane clients made by `client()` go through `faults`."""

    def __init__(self, app: FastAPI, manage: httpx.AsyncClient) -> None:
        self.app = app
        self.manage = manage
        self.faults = FaultTransport(app)

    def client(
        self, clock: Clock = SYSTEM, *, timeout: float = TIMEOUT, token: str = SERVICE_TOKEN
    ) -> ControlPlaneClient:
        """A data-plane client whose breaker opens after 3 failures, for 2 seconds."""
        breaker = CircuitBreaker(threshold=3, window=2.0, clock=clock)
        return ControlPlaneClient(
            URL, token, breaker=breaker, timeout=timeout, transport=self.faults
        )

    async def _ok(
        self,
        method: str,
        path: str,
        tenant: Tenant,
        headers: dict[str, str] | None = None,
        **kw: Any,
    ) -> Any:
        headers = {**tenant.admin, **(headers or {})}
        response = await self.manage.request(method, path, headers=headers, **kw)
        assert response.is_success, response.text
        return response.json() if response.content else None

    async def signup(self, name: str) -> Tenant:
        response = await self.manage.post(
            "/v1/signup",
            json={"email": f"owner@{name}.example", "password": "correct horse", "org_name": name},
        )
        assert response.status_code == 201, response.text
        body = response.json()
        org = body["organization"]
        return Tenant(org["id"], org["slug"], body["secret"], body["api_key"]["id"])

    async def issue_key(self, tenant: Tenant, *scopes: str) -> tuple[str, int]:
        body = await self._ok(
            "POST", "/v1/keys", tenant, json={"name": "test", "scopes": list(scopes)}
        )
        return body["secret"], body["api_key"]["id"]

    async def revoke(self, tenant: Tenant, key_id: int) -> None:
        await self._ok("DELETE", f"/v1/keys/{key_id}", tenant)

    async def project(self, tenant: Tenant, slug: str) -> int:
        body = await self._ok("POST", "/v1/projects", tenant, json={"slug": slug})
        return int(body["id"])

    async def publish(
        self, tenant: Tenant, project: str, archive: bytes, *, activate: bool = True
    ) -> str:
        """Publish (and by default activate) a release; its digest."""
        body = await self._ok(
            "POST",
            f"/v1/projects/{project}/releases",
            tenant,
            {"Content-Type": "application/gzip"},
            content=archive,
            params={"activate": str(activate).lower()},
        )
        return str(body["digest"]).removeprefix("sha256:")

    def artifact(self, digest: str) -> Path:
        """Where the control plane keeps a published archive."""
        return Path(self.app.state.artifacts.path(digest))

    async def set_env(self, tenant: Tenant, project: str, name: str, value: str) -> None:
        await self._ok("PUT", f"/v1/projects/{project}/env/{name}", tenant, json={"value": value})

    async def cap_tokens(self, tenant: Tenant, limit: int) -> None:
        await self._ok("PUT", "/v1/budget", tenant, json={"monthly_token_limit": limit})

    async def ledger(self, tenant: Tenant) -> list[UsageEvent]:
        """The organization's metered usage events, as the control plane recorded them."""
        async with self.app.state.db() as session:
            rows = await session.scalars(
                select(UsageEvent).where(UsageEvent.organization_id == tenant.id)
            )
            return list(rows.all())

    async def audit(self, tenant: Tenant) -> list[dict[str, Any]]:
        body = await self._ok("GET", "/v1/audit", tenant, params={"limit": 1000})
        return list(body["data"])


@asynccontextmanager
async def control_plane(home: Path) -> AsyncIterator[ControlPlaneDouble]:
    settings = ControlSettings(
        home=home,
        internal=InternalAccess.build([SERVICE_TOKEN]),
        session_token_secret=SESSION_SECRET,
        providers=NO_PROVIDERS,
    )
    app = create_control_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=URL) as manage:
            yield ControlPlaneDouble(app, manage)


@asynccontextmanager
async def data_plane(
    control: ControlPlaneDouble,
    home: Path,
    clock: Clock = SYSTEM,
    *,
    open_auth: bool = False,
    **overrides: Any,
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The data-plane app (serving the example app) and its lifespan, calling `control`
    through its fault transport; with a client of its HTTP API. `overrides` are settings."""
    settings = Settings(
        home=home,
        open_auth=open_auth,
        control_plane_url=URL,
        internal=InternalAccess.build([SERVICE_TOKEN]),
        session_token_secret=SESSION_SECRET,
        breaker_threshold=3,
        **overrides,
    )
    app = create_app(
        load_app(SUPPORT_BOT), settings, {}, clock=clock, control_transport=control.faults
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://data") as client:
            yield app, client
