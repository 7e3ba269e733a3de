"""Bad input on every route gets the right 4xx with a JSON body naming the problem, and stores
nothing; auth, health and the OpenAPI document."""

from __future__ import annotations

import httpx
import pytest

from karta.core.api_keys import LOOKUP_PREFIX_LEN
from tests.conftest import KartaServer


def sessions_on_disk(server: KartaServer) -> int:
    root = server.home / "sessions"
    return len(list(root.iterdir())) if root.exists() else 0


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(body.get("error"), str) and isinstance(body.get("message"), str), body
    if code is not None:
        assert body["error"] == code, body
    return body


def test_health_and_readiness_need_no_auth(server):
    assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok", "api_version": 1}
    checks = {"database": "ok", "coordinator": "ok", "control_plane": "ok", "harness": "ok"}
    ready = httpx.get(f"{server.url}/readyz").json()
    assert ready.keys() == {"status", "checks", "sandbox", "harnesses"}
    assert ready["harnesses"].keys() == {"live", "pooled", "starting", "queued"}
    assert (ready["status"], ready["checks"]) == ("ready", checks)


@pytest.mark.parametrize(
    "method,path",
    [
        ("POST", "/v1/sessions"),
        ("GET", "/v1/sessions/sess_x"),
        ("DELETE", "/v1/sessions/sess_x"),
        ("POST", "/v1/sessions/sess_x/messages"),
        ("PUT", "/v1/sessions/sess_x/inputs/req_x"),
        ("GET", "/v1/sessions/sess_x/events"),
        ("GET", "/v1/app"),
    ],
)
@pytest.mark.parametrize("header", [None, "Bearer kt_live_" + "x" * 32, "Basic abc", "Bearer"])
def test_every_route_requires_a_valid_key(server, method, path, header):
    headers = {"Authorization": header} if header else {}
    response = httpx.request(method, server.url + path, headers=headers, json={})
    assert_error(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"


def test_credentials_file_is_private_and_holds_a_live_key(server):
    path = server.home / "credentials.json"
    assert path.stat().st_mode & 0o777 == 0o600
    assert server.api_key.startswith("kt_live_") and len(server.api_key) == 40
    key, prefix = server.api_key, server.api_key[:LOOKUP_PREFIX_LEN]
    stored = stored_key_rows(server)
    assert any(prefix in row for row in stored), "the key's row is where the check looks"
    assert not any(key in row for row in stored), "keys are stored hashed"


def stored_key_rows(server) -> list[str]:  # type: ignore[no-untyped-def]
    """Every `api_keys` row of the control plane's database, as text."""
    import asyncio
    import sqlite3

    import asyncpg

    if server.db.control_url is None:
        with sqlite3.connect(server.home / "control.db") as db:
            return [repr(row) for row in db.execute("SELECT * FROM api_keys")]

    async def read() -> list[str]:
        conn = await asyncpg.connect(server.db.control_url)
        try:
            return [repr(dict(row)) for row in await conn.fetch("SELECT * FROM api_keys")]
        finally:
            await conn.close()

    return asyncio.run(read())


@pytest.mark.parametrize(
    "body,field",
    [
        ({"metadata": {f"k{i}": i for i in range(51)}}, "metadata"),
        ({"metadata": {"big": "x" * 10_001}}, "metadata"),
        ({"metadata": {"nested": {"list": ["x" * 100] * 200}}}, "metadata"),
        ({"metadata": {"k" * 300: 1}}, "metadata"),
        ({"metadata": "not an object"}, "metadata"),
        ({"unexpected": 1}, "unexpected"),
        ({"session_id": ""}, "session_id"),
    ],
)
def test_create_session_rejects_bad_bodies_and_stores_nothing(api, server, body, field):
    before = sessions_on_disk(server)
    error = assert_error(api.post("/v1/sessions", json=body), 422, "validation_error")
    assert error["fields"][0]["field"].startswith(field)
    assert sessions_on_disk(server) == before


def test_malformed_json_is_a_clear_422(api, server):
    before = sessions_on_disk(server)
    response = api.post(
        "/v1/sessions", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert_error(response, 422, "validation_error")
    assert sessions_on_disk(server) == before


def test_unknown_sessions_are_404_on_every_route(api):
    assert_error(api.get("/v1/sessions/sess_missing"), 404, "session_not_found")
    assert_error(api.delete("/v1/sessions/sess_missing"), 404, "session_not_found")
    assert_error(api.post("/v1/sessions", json={"session_id": "sess_missing"}), 404)
    assert_error(api.post("/v1/sessions/sess_missing/messages", json={"text": "hi"}), 404)
    assert_error(api.put("/v1/sessions/sess_missing/inputs/req_x", json={"decision": "deny"}), 404)
    assert_error(api.get("/v1/sessions/sess_missing/events"), 404)


@pytest.mark.parametrize(
    "body,status,code",
    [
        ({}, 422, "validation_error"),
        ({"text": ""}, 422, "validation_error"),
        ({"text": "x" * 1_000_001}, 422, "validation_error"),
        ({"text": "hi", "participant_type": "robot"}, 422, "validation_error"),
        ({"text": "hi", "thinking": "very"}, 422, "validation_error"),
        ({"text": "hi", "agent": "no-such-agent"}, 404, "agent_not_found"),
    ],
)
def test_bad_messages_are_refused_before_any_turn_runs(api, body, status, code):
    session = api.post("/v1/sessions", json={}).json()
    assert_error(api.post(f"/v1/sessions/{session['id']}/messages", json=body), status, code)
    after = api.get(f"/v1/sessions/{session['id']}").json()
    assert after["last_event_seq"] == 0 and after["turn_running"] is False
    assert after["current_agent"] == "triage"


def test_bad_decisions_and_cursors(api):
    sid = api.post("/v1/sessions", json={}).json()["id"]
    assert_error(api.put(f"/v1/sessions/{sid}/inputs/req_x", json={"decision": "maybe"}), 422)
    assert_error(api.put(f"/v1/sessions/{sid}/inputs/req_x", json={}), 422)
    assert_error(
        api.put(f"/v1/sessions/{sid}/inputs/req_x", json={"decision": "deny"}),
        404,
        "input_not_found",
    )
    assert_error(api.get(f"/v1/sessions/{sid}/events", headers={"Last-Event-ID": "abc"}), 400)
    assert_error(api.get(f"/v1/sessions/{sid}/events", params={"after": -1}), 422)


def test_resume_by_id_answers_200_and_ended_sessions_refuse_turns(api, server):
    created = api.post("/v1/sessions", json={"metadata": {"a": "b"}})
    assert created.status_code == 201
    sid = created.json()["id"]
    resumed = api.post("/v1/sessions", json={"session_id": sid})
    assert resumed.status_code == 200 and resumed.json()["metadata"] == {"a": "b"}
    assert server.workspace(sid).is_dir()

    assert api.delete(f"/v1/sessions/{sid}").status_code == 204
    assert api.get(f"/v1/sessions/{sid}").json()["status"] == "ended"
    assert not server.workspace(sid).exists()
    assert_error(
        api.post(f"/v1/sessions/{sid}/messages", json={"text": "hi"}), 409, "session_ended"
    )


def test_openapi_declares_the_routes_and_error_shape(server):
    doc = httpx.get(f"{server.url}/openapi.json").json()
    paths = doc["paths"]
    for path in (
        "/v1/sessions",
        "/v1/sessions/{session_id}",
        "/v1/sessions/{session_id}/messages",
        "/v1/sessions/{session_id}/inputs/{request_id}",
        "/v1/sessions/{session_id}/events",
    ):
        assert path in paths, path
    responses = paths["/v1/sessions/{session_id}/messages"]["post"]["responses"]
    for status in ("401", "404", "409", "422"):
        ref = responses[status]["content"]["application/json"]["schema"]["$ref"]
        assert ref.endswith("/ErrorBody")
