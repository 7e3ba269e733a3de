"""The tenancy walk: every route of both planes' OpenAPI documents, called with another
organization's credentials against one organization's resources, answers exactly as for a
missing resource (404). A route that this table does not know fails the test, so a new route
cannot ship without a decision about its tenancy."""

from __future__ import annotations

from typing import Any

import httpx

from tests.controlplane.test_permissions import ACCOUNT_ROUTES, ROUTES
from tests.integration.test_planes import PROJECT, bearer, signup

# Data-plane routes that name no tenant resource: the caller acts in its own org (or on the
# shared app description, or health), so there is nothing foreign to reach.
DATA_UNSCOPED = {
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/v1/app"),
    ("GET", "/v1/projects/{ref}/app"),
    ("POST", "/v1/sessions"),
    ("POST", "/v1/projects/{ref}/sessions"),
    # The adapters open a session in the caller's own project; one naming a foreign session
    # (header, metadata, previous_response_id) is checked in tests/integration/test_adapters.py.
    ("POST", "/v1/projects/{ref}/chat/completions"),
    ("POST", "/v1/projects/{ref}/responses"),
    ("POST", "/v1/projects/{ref}/messages"),
    ("POST", "/v1/projects/{ref}/anthropic/v1/messages"),
    ("POST", "/v1/projects/{ref}/managed-agents/sessions"),
    ("POST", "/v1/projects/{ref}/anthropic/v1/sessions"),
    # The embed edge answers by the page's Origin and a publishable key
    # (tests/unit/test_embed_edge.py); the gateway's trust list is the caller's own
    # organization's, and its events and deliveries name their recipient in the body: across
    # organizations they are refused (tests/unit/test_gateway.py).
    ("POST", "/v1/embed/session-tokens"),
    ("GET", "/v1/embed/config"),
    ("GET", "/v1/gateway/trust"),
    ("PUT", "/v1/gateway/trust/{organization_id}"),
    ("DELETE", "/v1/gateway/trust/{organization_id}"),
    ("POST", "/v1/gateway/events"),
    ("POST", "/v1/gateway/deliveries"),
}
# Bodies that would be valid for the owner, so a 404 is about tenancy, not a malformed call.
DATA_BODIES: dict[str, dict[str, Any]] = {
    "messages": {"text": "hello"},
    "inputs": {"decision": "deny"},
    "participants": {"id": "walker", "type": "human"},
}


def _paths(url: str) -> set[tuple[str, str]]:
    spec = httpx.get(f"{url}/openapi.json").json()
    return {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}


def _body(template: str) -> dict[str, Any] | None:
    return next(
        (
            b
            for part, b in DATA_BODIES.items()
            if template.endswith(part) or f"/{part}/" in template
        ),
        None,
    )


def test_every_route_of_both_planes_denies_another_org(server):
    # Organization A (the local org) owns a session on each route family and a project.
    with server.client() as owner:
        flat = owner.post("/v1/sessions", json={}).json()["id"]
        in_project = owner.post(f"/v1/projects/{PROJECT}/sessions", json={}).json()["id"]
    # Organization B has its own project of the same name, a key and a session token.
    b_key = signup(server.control_url, "walker")
    with httpx.Client(base_url=server.control_url, headers=bearer(b_key)) as control:
        assert control.post("/v1/projects", json={"slug": PROJECT}).status_code == 201
        token = control.post(f"/v1/projects/{PROJECT}/session_tokens", json={}).json()["token"]

    data_routes = _paths(server.url)
    scoped = data_routes - DATA_UNSCOPED
    assert scoped, "the data plane publishes session routes"
    for method, template in sorted(scoped):
        sid = in_project if template.startswith("/v1/projects/") else flat
        path = template.format(
            session_id=sid, ref=PROJECT, request_id="req_missing", participant_id="walker"
        )
        for who, credential in (("key", b_key), ("session token", token)):
            r = httpx.request(
                method, f"{server.url}{path}", json=_body(template), headers=bearer(credential)
            )
            if who == "session token" and not template.startswith("/v1/projects/"):
                assert r.status_code == 401, (who, method, path, r.text)
            elif template.endswith("/sessions") and method == "GET":
                # A listing answers with the caller's own sessions: none of A's.
                assert r.status_code == 200, (who, method, path, r.status_code, r.text)
                assert {flat, in_project}.isdisjoint(s["id"] for s in r.json()["data"])
            else:
                assert r.status_code == 404, (who, method, path, r.status_code, r.text)
    # The owner still sees both sessions: the walk changed nothing.
    with server.client() as owner:
        assert owner.get(f"/v1/sessions/{flat}").json()["status"] == "active"
        assert owner.get(f"/v1/projects/{PROJECT}/sessions/{in_project}").status_code == 200

    # The control plane: every route of its document is in the permission table, and each
    # one naming A's key, member, project or release is a 404 for B.
    control_routes = _paths(server.control_url)
    assert control_routes == {(m, p) for m, p, *_ in ROUTES} | ACCOUNT_ROUTES
    member_key = signup(server.control_url, "member")
    with server.control() as a_admin:
        member = httpx.get(f"{server.control_url}/v1/me", headers=bearer(member_key)).json()
        email = member["organization"]["slug"] + "@example.com"
        invited = a_admin.post("/v1/members", json={"email": email, "role": "viewer"})
        assert invited.status_code == 201
        login = {"email": email, "password": "correct horse"}
        token = httpx.post(f"{server.control_url}/v1/auth/login", json=login).json()["token"]
        accepted = httpx.post(
            f"{server.control_url}/v1/invitations/{invited.json()['id']}/accept",
            headers=bearer(token),
        )
        assert accepted.status_code == 200, accepted.text
        a_ids = {
            "invitation_id": invited.json()["id"],
            "key_id": a_admin.get("/v1/keys").json()["data"][0]["id"],
            "user_id": a_admin.get("/v1/members").json()["data"][0]["user_id"],
            "ref": a_admin.get(f"/v1/projects/{PROJECT}").json()["id"],
            "version": "v1",
            "name": "TOKEN",
        }
    with httpx.Client(base_url=server.control_url, headers=bearer(b_key)) as control:
        for method, template, _, body, _ in ROUTES:
            if "{" in template:
                path = template.format(**a_ids)
                r = control.request(method, path, json=body() if body else None)
                assert r.status_code == 404, (method, path, r.status_code, r.text)
