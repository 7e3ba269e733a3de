"""The internal-API guard: token set with rotation, IP and Host allowlists answering 404, and a
503 — never an open door — when no token is configured."""

from __future__ import annotations

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from karta.core import http_errors
from karta.core.internal_auth import InternalAccess, require_service


def _client(access: InternalAccess, client_ip: str = "127.0.0.1") -> TestClient:
    app = FastAPI()
    app.state.internal_access = access
    http_errors.install(app)

    @app.get("/internal/ping", dependencies=[Depends(require_service)])
    async def ping() -> dict[str, bool]:
        return {"ok": True}

    return TestClient(app, client=(client_ip, 5000))


def _get(client: TestClient, token: str | None, **headers: str) -> int:
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return client.get("/internal/ping", headers=headers).status_code


def test_tokens_rotate_without_downtime() -> None:
    client = _client(InternalAccess.build(["new-token", "old-token"]))
    assert _get(client, "old-token") == 200
    assert _get(client, "new-token") == 200
    assert _get(client, "wrong") == 401
    assert _get(client, None) == 401
    assert InternalAccess.build(["b", "a"]).outbound_token == "a"


def test_no_token_configured_is_503() -> None:
    response = _client(InternalAccess.build([])).get(
        "/internal/ping", headers={"Authorization": "Bearer "}
    )
    assert response.status_code == 503
    assert response.headers["Retry-After"]


def test_ip_allowlist() -> None:
    access = InternalAccess.build(["t"], ("10.0.0.0/8",))
    assert _get(_client(access, "10.1.2.3"), "t") == 200
    assert _get(_client(access, "192.0.2.1"), "t") == 404
    # The rightmost X-Forwarded-For entry is the one the proxy saw.
    assert (
        _get(_client(access, "192.0.2.1"), "t", **{"X-Forwarded-For": "192.0.2.9, 10.0.0.5"}) == 200
    )
    assert (
        _get(_client(access, "10.1.2.3"), "t", **{"X-Forwarded-For": "10.0.0.5, 192.0.2.9"}) == 404
    )
    with pytest.raises(ValueError, match="KARTA_INTERNAL_ALLOWED_IPS"):
        InternalAccess.build(["t"], ("not-a-cidr",))


def test_host_allowlist() -> None:
    access = InternalAccess.build(["t"], (), ("cp.internal",))
    client = _client(access)
    assert _get(client, "t", Host="cp.internal:8001") == 200
    assert _get(client, "t", Host="dashboard.example.com") == 404
    # Outside the allowlist even a valid token learns nothing.
    assert _get(client, "wrong", Host="dashboard.example.com") == 404
