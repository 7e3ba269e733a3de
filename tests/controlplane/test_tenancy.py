"""Default-deny across organizations on the control plane: another org's key, member, project,
usage and audit rows are a 404 (or simply absent from lists) on every route, with every kind of
credential — exactly like a missing one."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from tests.controlplane.conftest import ControlPlane
from tests.controlplane.test_permissions import ACCOUNT_ROUTES, ROUTES


async def test_every_route_denies_a_foreign_org(control: ControlPlane) -> None:
    victim = await control.signup("victim")
    r = await control.client.post("/v1/projects", headers=victim.admin, json={"slug": "secret"})
    project_id = r.json()["id"]
    member = await control.user(victim, "developer")
    member_id = (await control.client.get("/v1/me", headers=member)).json()["user"]["id"]
    r = await control.client.post(
        "/v1/members", headers=victim.admin, json={"email": "new@victim.io", "role": "viewer"}
    )
    invitation_id = r.json()["id"]
    await control.client.post(
        "/internal/usage/events",
        headers=control.service,
        json={
            "events": [
                {
                    "event_id": "v1",
                    "organization_id": victim.id,
                    "api_key_id": victim.admin_key_id,
                    "model": "claude-sonnet-4",
                    "input_tokens": 777,
                    "output_tokens": 7,
                    "occurred_at": datetime.now(UTC).isoformat(),
                }
            ]
        },
    )
    attacker = await control.signup("attacker")
    await control.client.post("/v1/projects", headers=attacker.admin, json={"slug": "bot"})
    foreign = {
        "user_id": member_id,
        "invitation_id": invitation_id,
        "key_id": victim.admin_key_id,
        "ref": "secret",
        "version": "v1",
        "name": "TOKEN",
    }
    credentials = {
        "admin key": attacker.admin,
        "owner login": attacker.owner,
    }
    victim_markers = ['"victim"', '"secret"', victim.owner_email, ": 777"]
    for who, headers in credentials.items():
        for method, template, _, body, _ in ROUTES:
            path = template.format(**foreign)
            if "{" not in template and method != "GET":
                continue  # creates in the caller's own org: nothing foreign to reach
            r = await control.client.request(
                method, path, headers=headers, json=body() if body else None
            )
            if "{" in template:
                assert r.status_code == 404, (who, method, path, r.status_code, r.text)
            else:
                assert r.status_code == 200, (who, path, r.text)
                text = json.dumps(r.json())
                assert not [m for m in victim_markers if m in text], (who, path, text)
                for row in r.json().get("data", []):
                    assert row.get("organization_id", attacker.id) == attacker.id, (who, path)
                    if path == "/v1/keys":
                        assert row["id"] != victim.admin_key_id
        # By id as well as by slug.
        r = await control.client.get(f"/v1/projects/{project_id}", headers=headers)
        assert r.status_code == 404
    # A login token naming the victim org it does not belong to: 404 on every route.
    naming = {**attacker.owner, "Karta-Org": victim.slug}
    for method, template, _, body, _ in ROUTES:
        path = template.format(**foreign)
        r = await control.client.request(
            method, path, headers=naming, json=body() if body else None
        )
        assert r.status_code == 404, (method, path, r.text)
    assert ("GET", "/v1/me") in ACCOUNT_ROUTES


async def test_internal_api_is_org_scoped(control: ControlPlane) -> None:
    victim = await control.signup()
    await control.client.post("/v1/projects", headers=victim.admin, json={"slug": "secret"})
    attacker = await control.signup()
    r = await control.client.get(
        f"/internal/projects/secret?organization_id={attacker.id}", headers=control.service
    )
    assert r.status_code == 404
    r = await control.client.get(
        f"/internal/projects/secret?organization_id={victim.id}", headers=control.service
    )
    assert r.status_code == 200 and r.json()["organization_id"] == victim.id
    # Usage billed to another org's key is rejected, not counted.
    r = await control.client.post(
        "/internal/usage/events",
        headers=control.service,
        json={
            "events": [
                {
                    "event_id": "x1",
                    "organization_id": attacker.id,
                    "api_key_id": victim.admin_key_id,
                    "input_tokens": 5,
                    "occurred_at": datetime.now(UTC).isoformat(),
                }
            ]
        },
    )
    assert r.json() == {"accepted": 0, "duplicates": 0, "rejected": ["x1"]}
    usage = (await control.client.get("/v1/usage", headers=attacker.admin)).json()
    assert usage["totals"]["model_calls"] == 0
