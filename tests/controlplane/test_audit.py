"""The audit log: every mutation leaves a row in its own transaction, with actor and request
context and no secret; the chain detects tampering; the table is append-only below the app."""

from __future__ import annotations

import json
import sqlite3

import asyncpg
import pytest

from karta.controlplane.models import AuditEvent
from karta.core import auditchain
from tests.controlplane.conftest import ControlPlane


async def _audit(control: ControlPlane, headers: dict[str, str]) -> dict:
    r = await control.client.get("/v1/audit?limit=1000", headers=headers)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def test_mutations_are_audited_without_secrets(control: ControlPlane) -> None:
    org = await control.signup()
    c = control.client
    secret, key_id = await control.key(org, "read")
    await c.patch(f"/v1/keys/{key_id}", headers=org.admin, json={"monthly_token_limit": 10})
    await c.delete(f"/v1/keys/{key_id}", headers=org.admin)
    await c.put("/v1/budget", headers=org.admin, json={"monthly_token_limit": 5})
    await c.post("/v1/projects", headers=org.owner, json={"slug": "bot"})
    dev = await control.user(org, "developer")
    dev_id = (await c.get("/v1/me", headers=dev)).json()["user"]["id"]
    await c.patch(
        f"/v1/members/{dev_id}",
        headers={**org.admin, "X-Request-Id": "req-role-change"},
        json={"role": "viewer"},
    )
    await c.delete(f"/v1/members/{dev_id}", headers=org.admin)
    log = await _audit(control, org.admin)
    actions = [row["action"] for row in log["data"]]
    assert actions == [
        "org.created",
        "member.added",
        "key.created",  # signup's admin key
        "key.created",
        "key.limits_changed",
        "key.revoked",
        "budget.changed",
        "project.created",
        "member.invited",
        "member.added",  # by the invitee, accepting
        "member.role_changed",
        "member.removed",
    ]
    role_change = log["data"][actions.index("member.role_changed")]
    assert role_change["actor_type"] == "api_key"
    assert role_change["actor_id"] == f"key:{org.admin_key_id}"
    assert role_change["request_id"] == "req-role-change"
    assert role_change["ip"]
    assert role_change["details"] == {"before": "developer", "after": "viewer"}
    project = log["data"][actions.index("project.created")]
    assert project["actor_type"] == "user"
    text = json.dumps(log)
    assert secret not in text and org.admin_key not in text and "correct horse" not in text
    assert auditchain.verify(log["data"], log["head"]).ok
    # A failed mutation writes nothing.
    before = log["head"]["seq"]
    r = await c.post("/v1/projects", headers=org.admin, json={"slug": "bot"})
    assert r.status_code == 409
    assert (await _audit(control, org.admin))["head"]["seq"] == before


async def test_paging_and_the_head(control: ControlPlane) -> None:
    org = await control.signup()
    for n in range(5):
        await control.client.post("/v1/projects", headers=org.admin, json={"slug": f"p{n}"})
    rows, after = [], 0
    while True:
        r = await control.client.get(f"/v1/audit?after={after}&limit=2", headers=org.admin)
        page = r.json()
        rows += page["data"]
        if page["next_after"] is None:
            break
        after = page["next_after"]
    assert [row["seq"] for row in rows] == list(range(1, 9))
    assert auditchain.verify(rows, page["head"]).ok
    assert not auditchain.verify(rows[:-1], page["head"]).ok  # a dropped tail is caught


async def test_tampering_is_detected(control: ControlPlane, tmp_path) -> None:  # type: ignore[no-untyped-def]
    org = await control.signup()
    await control.client.put("/v1/budget", headers=org.admin, json={"monthly_token_limit": 5})
    await control.client.post("/v1/projects", headers=org.admin, json={"slug": "bot"})
    settings = control.app.state.settings
    if settings.database_url is None:
        with sqlite3.connect(tmp_path / "control.db") as conn:
            conn.execute(
                "UPDATE audit_events SET details = ? WHERE organization_id = ? AND seq = 4",
                (json.dumps({"after": {"monthly_token_limit": 5000000}}), org.id),
            )
        log = await _audit(control, org.admin)
        verdict = auditchain.verify(log["data"], log["head"])
        assert not verdict.ok and verdict.seq == 4
    else:
        conn = await asyncpg.connect(settings.database_url)
        try:
            for sql in (
                "UPDATE audit_events SET action = 'x'",
                "DELETE FROM audit_events",
                "TRUNCATE audit_events",
            ):
                with pytest.raises(asyncpg.RaiseError, match="append-only"):
                    await conn.execute(sql)
        finally:
            await conn.close()


async def test_the_application_cannot_rewrite_rows(control: ControlPlane) -> None:
    org = await control.signup()
    async with control.app.state.db() as session, session.begin():
        row = await session.get(AuditEvent, 1)
        assert row is not None
        row.action = "rewritten"
        with pytest.raises(PermissionError):
            await session.flush()
    async with control.app.state.db() as session:
        with pytest.raises(PermissionError):
            await session.delete(await session.get(AuditEvent, 1))
            await session.flush()
    assert (await _audit(control, org.admin))["data"][0]["action"] == "org.created"


async def test_the_data_plane_reports_decided_approvals(control: ControlPlane) -> None:
    org = await control.signup()
    other = await control.signup()

    def event(event_id: str, **over: object) -> dict:
        return {
            "event_id": event_id,
            "organization_id": org.id,
            "actor_type": "api_key",
            "api_key_id": org.admin_key_id,
            "action": "approval.decided",
            "resource_type": "approval",
            "resource_id": "req_abc",
            "details": {"session_id": "sess_1", "tool": "Write", "decision": "deny"},
            "request_id": "req-http-1",
            "occurred_at": "2026-11-24T10:00:00+00:00",
            **over,
        }

    batch = [
        event("e1"),
        event("e2", actor_type="end_user", api_key_id=None, subject="alice"),
        event("e3", api_key_id=other.admin_key_id),  # another org's key: rejected
    ]
    report = "/internal/audit/events"
    r = await control.client.post(report, headers=control.service, json={"events": batch})
    assert r.json() == {"accepted": 2, "duplicates": 0, "rejected": ["e3"]}
    r = await control.client.post(report, headers=control.service, json={"events": batch[:1]})
    assert r.json()["duplicates"] == 1
    forged = event("e4", action="key.revoked")
    r = await control.client.post(report, headers=control.service, json={"events": [forged]})
    assert r.status_code == 422
    log = await _audit(control, org.admin)
    reported = [row for row in log["data"] if row["action"] == "approval.decided"]
    assert [row["actor_id"] for row in reported] == [f"key:{org.admin_key_id}", "end_user:alice"]
    assert reported[0]["details"]["reported"]["decision"] == "deny"
    assert reported[0]["request_id"] == "req-http-1"
    assert auditchain.verify(log["data"], log["head"]).ok
