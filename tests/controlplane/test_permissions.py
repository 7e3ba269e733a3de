"""Every management route against every role and every key scope: allowed exactly when the
permission matrix says so, and a route without a row in this table fails the test."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import pytest

from karta.controlplane.permissions import (
    ROLE_PERMISSIONS,
    ROLES,
    SCOPE_PERMISSIONS,
    SCOPES,
    Permission,
)
from tests.controlplane.conftest import ControlPlane, Org

P = Permission
MISSING = 999_999

Body = Callable[[], dict[str, Any]] | None
# (method, OpenAPI path, concrete path, body, permission). Destructive routes aim at a missing
# id: the permission check comes first, so "allowed" shows as a 404, "denied" as a 403.
ROUTES: list[tuple[str, str, str, Body, Permission]] = [
    ("GET", "/v1/org", "/v1/org", None, P.ORG_READ),
    ("GET", "/v1/members", "/v1/members", None, P.MEMBERS_READ),
    (
        "POST",
        "/v1/members",
        "/v1/members",
        lambda: {"email": "nobody@example.com", "role": "viewer"},
        P.MEMBERS_MANAGE,
    ),
    (
        "PATCH",
        "/v1/members/{user_id}",
        f"/v1/members/{MISSING}",
        lambda: {"role": "viewer"},
        P.MEMBERS_MANAGE,
    ),
    ("DELETE", "/v1/members/{user_id}", f"/v1/members/{MISSING}", None, P.MEMBERS_MANAGE),
    ("GET", "/v1/members/invitations", "/v1/members/invitations", None, P.MEMBERS_MANAGE),
    (
        "DELETE",
        "/v1/members/invitations/{invitation_id}",
        f"/v1/members/invitations/{MISSING}",
        None,
        P.MEMBERS_MANAGE,
    ),
    ("GET", "/v1/keys", "/v1/keys", None, P.KEYS_READ),
    ("POST", "/v1/keys", "/v1/keys", lambda: {"name": "x", "scopes": ["read"]}, P.KEYS_MANAGE),
    ("GET", "/v1/keys/{key_id}", f"/v1/keys/{MISSING}", None, P.KEYS_READ),
    ("PATCH", "/v1/keys/{key_id}", f"/v1/keys/{MISSING}", lambda: {}, P.KEYS_MANAGE),
    ("DELETE", "/v1/keys/{key_id}", f"/v1/keys/{MISSING}", None, P.KEYS_MANAGE),
    ("GET", "/v1/projects", "/v1/projects", None, P.PROJECTS_READ),
    (
        "POST",
        "/v1/projects",
        "/v1/projects",
        lambda: {"slug": f"p-{secrets.token_hex(4)}"},
        P.PROJECTS_WRITE,
    ),
    ("GET", "/v1/projects/{ref}", "/v1/projects/missing", None, P.PROJECTS_READ),
    (
        "POST",
        "/v1/projects/{ref}/session_tokens",
        "/v1/projects/bot/session_tokens",
        lambda: {},
        P.SESSION_TOKENS_MINT,
    ),
    (
        "POST",
        "/v1/projects/{ref}/releases",
        "/v1/projects/missing/releases",
        None,
        P.RELEASES_PUBLISH,
    ),
    ("GET", "/v1/projects/{ref}/releases", "/v1/projects/missing/releases", None, P.PROJECTS_READ),
    (
        "GET",
        "/v1/projects/{ref}/releases/{version}",
        "/v1/projects/missing/releases/v1",
        None,
        P.PROJECTS_READ,
    ),
    (
        "POST",
        "/v1/projects/{ref}/releases/{version}/activate",
        "/v1/projects/missing/releases/v1/activate",
        None,
        P.RELEASES_ACTIVATE,
    ),
    (
        "POST",
        "/v1/projects/{ref}/rollback",
        "/v1/projects/missing/rollback",
        None,
        P.RELEASES_ACTIVATE,
    ),
    ("GET", "/v1/projects/{ref}/env", "/v1/projects/missing/env", None, P.ENV_READ),
    (
        "PUT",
        "/v1/projects/{ref}/env/{name}",
        "/v1/projects/missing/env/TOKEN",
        lambda: {"value": "v"},
        P.ENV_WRITE,
    ),
    (
        "DELETE",
        "/v1/projects/{ref}/env/{name}",
        "/v1/projects/missing/env/TOKEN",
        None,
        P.ENV_WRITE,
    ),
    (
        "GET",
        "/v1/projects/{ref}/embed_keys",
        "/v1/projects/missing/embed_keys",
        None,
        P.EMBED_KEYS_READ,
    ),
    (
        "POST",
        "/v1/projects/{ref}/embed_keys",
        "/v1/projects/missing/embed_keys",
        lambda: {"name": "site"},
        P.EMBED_KEYS_MANAGE,
    ),
    (
        "GET",
        "/v1/projects/{ref}/embed_keys/{key_id}",
        f"/v1/projects/missing/embed_keys/{MISSING}",
        None,
        P.EMBED_KEYS_READ,
    ),
    (
        "PATCH",
        "/v1/projects/{ref}/embed_keys/{key_id}",
        f"/v1/projects/missing/embed_keys/{MISSING}",
        lambda: {},
        P.EMBED_KEYS_MANAGE,
    ),
    (
        "POST",
        "/v1/projects/{ref}/embed_keys/{key_id}/rotate",
        f"/v1/projects/missing/embed_keys/{MISSING}/rotate",
        None,
        P.EMBED_KEYS_MANAGE,
    ),
    (
        "DELETE",
        "/v1/projects/{ref}/embed_keys/{key_id}",
        f"/v1/projects/missing/embed_keys/{MISSING}",
        None,
        P.EMBED_KEYS_MANAGE,
    ),
    ("GET", "/v1/budget", "/v1/budget", None, P.BUDGET_READ),
    ("PUT", "/v1/budget", "/v1/budget", lambda: {}, P.BUDGET_MANAGE),
    ("GET", "/v1/usage", "/v1/usage", None, P.USAGE_READ),
    ("GET", "/v1/audit", "/v1/audit", None, P.AUDIT_READ),
    ("GET", "/v1/provider_keys", "/v1/provider_keys", None, P.PROVIDER_KEYS_READ),
    (
        "POST",
        "/v1/provider_keys",
        "/v1/provider_keys",
        lambda: {
            "provider": "anthropic",
            "label": "x",
            "project": "missing",
            "credential": {"api_key": "sk-ant-not-a-real-key"},
        },
        P.PROVIDER_KEYS_MANAGE,
    ),
    (
        "GET",
        "/v1/provider_keys/{key_id}",
        f"/v1/provider_keys/{MISSING}",
        None,
        P.PROVIDER_KEYS_READ,
    ),
    (
        "DELETE",
        "/v1/provider_keys/{key_id}",
        f"/v1/provider_keys/{MISSING}",
        None,
        P.PROVIDER_KEYS_MANAGE,
    ),
    ("GET", "/v1/model_settings", "/v1/model_settings", None, P.PROVIDER_KEYS_READ),
    (
        "PUT",
        "/v1/model_settings",
        "/v1/model_settings?project=missing",
        lambda: {},
        P.PROVIDER_KEYS_MANAGE,
    ),
    (
        "DELETE",
        "/v1/model_settings",
        "/v1/model_settings?project=missing",
        None,
        P.PROVIDER_KEYS_MANAGE,
    ),
]
# Routes about the caller rather than an organization (their own invitations included): no
# permission to check.
ACCOUNT_ROUTES = {
    ("POST", "/v1/signup"),
    ("POST", "/v1/auth/login"),
    ("GET", "/v1/me"),
    ("GET", "/v1/orgs"),
    ("POST", "/v1/orgs"),
    ("GET", "/v1/invitations"),
    ("POST", "/v1/invitations/{invitation_id}/accept"),
    ("POST", "/v1/invitations/{invitation_id}/decline"),
}


async def _check(
    control: ControlPlane, headers: dict[str, str], granted: frozenset[Permission], who: str
) -> None:
    for method, _, path, body, permission in ROUTES:
        sent = body() if body else None
        r = await control.client.request(method, path, headers=headers, json=sent)
        if permission in granted:
            assert r.status_code in (200, 201, 204, 404), (who, method, path, r.text)
            if r.status_code == 404:
                aimed = path + str(sent)
                assert str(MISSING) in aimed or "missing" in aimed or "members" in aimed
        else:
            assert r.status_code == 403, (who, method, path, r.status_code, r.text)
            assert r.json() == {
                "error": "forbidden",
                "message": r.json()["message"],
                "permission": str(permission),
            }


async def test_every_route_is_in_the_matrix(control: ControlPlane) -> None:
    spec = (await control.client.get("/openapi.json")).json()
    published = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
    covered = {(m, p) for m, p, *_ in ROUTES} | ACCOUNT_ROUTES
    assert published == covered


@pytest.mark.parametrize("role", ROLES)
async def test_roles(control: ControlPlane, role: str) -> None:
    org = await control.signup()
    await control.client.post("/v1/projects", headers=org.admin, json={"slug": "bot"})
    headers = await control.user(org, role)
    await _check(control, headers, ROLE_PERMISSIONS[role], role)


@pytest.mark.parametrize("scope", SCOPES)
async def test_key_scopes(control: ControlPlane, scope: str) -> None:
    org: Org = await control.signup()
    await control.client.post("/v1/projects", headers=org.admin, json={"slug": "bot"})
    secret, _ = await control.key(org, scope)
    await _check(control, org.bearer(secret), SCOPE_PERMISSIONS[scope], scope)
