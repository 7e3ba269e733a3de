"""Members join by invitation: inviting says nothing about who has an account, nobody is added
without accepting, only the addressee can answer, and admins can see and withdraw what is
pending. Every step is in the audit log."""

from __future__ import annotations

import secrets

import httpx

from tests.controlplane.conftest import ControlPlane, Org


async def _registered(control: ControlPlane) -> tuple[str, dict[str, str]]:
    """A new user with an organization of their own: their email and login headers."""
    email = f"user-{secrets.token_hex(3)}@example.com"
    body = {"email": email, "password": "correct horse", "org_name": "own"}
    assert (await control.client.post("/v1/signup", json=body)).status_code == 201
    return email, {"Authorization": f"Bearer {await control.login(email)}"}


async def _invite(control: ControlPlane, org: Org, email: str, role: str = "viewer") -> dict:
    r = await control.client.post(
        "/v1/members", headers=org.admin, json={"email": email, "role": role}
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


async def _members(control: ControlPlane, org: Org) -> list[str]:
    r = await control.client.get("/v1/members", headers=org.admin)
    return [m["email"] for m in r.json()["data"]]


async def test_inviting_does_not_reveal_who_is_registered(control: ControlPlane) -> None:
    org = await control.signup()
    registered, _ = await _registered(control)
    unknown = f"nobody-{secrets.token_hex(3)}@example.com"
    answers = [await _invite(control, org, email) for email in (registered, unknown)]
    varying = {"id", "email", "created_at", "expires_at"}
    a, b = ({k: v for k, v in answer.items() if k not in varying} for answer in answers)
    assert a == b and a["status"] == "pending" and a["role"] == "viewer"
    assert list(answers[0]) == list(answers[1])  # the same fields, in the same order
    assert answers[0]["organization"]["slug"] == org.slug
    # Neither is a member until they accept.
    assert registered not in await _members(control, org)


async def test_the_invitee_accepts_and_becomes_a_member(control: ControlPlane) -> None:
    org = await control.signup()
    email, user = await _registered(control)
    invitation = await _invite(control, org, email, role="developer")
    mine = (await control.client.get("/v1/invitations", headers=user)).json()["data"]
    assert [(i["id"], i["organization"]["slug"]) for i in mine] == [(invitation["id"], org.slug)]

    r = await control.client.post(f"/v1/invitations/{invitation['id']}/accept", headers=user)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "accepted"
    assert email in await _members(control, org)
    acting = {**user, "Karta-Org": org.slug}
    assert (await control.client.get("/v1/keys", headers=acting)).status_code == 200  # developer
    assert (await control.client.get("/v1/audit", headers=acting)).status_code == 403
    assert (await control.client.get("/v1/invitations", headers=user)).json()["data"] == []
    again = await control.client.post(f"/v1/invitations/{invitation['id']}/accept", headers=user)
    assert again.status_code == 409 and again.json()["error"] == "invitation_not_pending"

    log = (await control.client.get("/v1/audit?limit=1000", headers=org.admin)).json()["data"]
    invited = next(row for row in log if row["action"] == "member.invited")
    added = [row for row in log if row["action"] == "member.added"][-1]
    assert invited["actor_id"] == f"key:{org.admin_key_id}"
    assert invited["details"] == {"email": email, "role": "developer"}
    me = (await control.client.get("/v1/me", headers=user)).json()["user"]["id"]
    assert added["actor_id"] == f"user:{me}" and added["resource_id"] == str(me)
    assert added["details"] == {"role": "developer", "invitation": invitation["id"]}


async def test_only_the_addressee_can_answer(control: ControlPlane) -> None:
    org = await control.signup()
    addressee, _ = await _registered(control)
    _, other = await _registered(control)
    invitation = await _invite(control, org, addressee)
    for answer in ("accept", "decline"):
        r = await control.client.post(f"/v1/invitations/{invitation['id']}/{answer}", headers=other)
        assert r.status_code == 404 and r.json()["error"] == "invitation_not_found"
    assert (await control.client.get("/v1/invitations", headers=other)).json()["data"] == []
    # An API key is nobody's: it has no invitations.
    r = await control.client.get("/v1/invitations", headers=org.admin)
    assert r.status_code == 403
    assert addressee not in await _members(control, org)


async def test_declining(control: ControlPlane) -> None:
    org = await control.signup()
    email, user = await _registered(control)
    invitation = await _invite(control, org, email)
    r = await control.client.post(f"/v1/invitations/{invitation['id']}/decline", headers=user)
    assert r.status_code == 200 and r.json()["status"] == "declined"
    assert email not in await _members(control, org)
    r = await control.client.post(f"/v1/invitations/{invitation['id']}/accept", headers=user)
    assert r.status_code == 409
    log = (await control.client.get("/v1/audit?limit=1000", headers=org.admin)).json()["data"]
    assert log[-1]["action"] == "member.invitation_declined"


async def test_admins_list_and_revoke_pending_invitations(control: ControlPlane) -> None:
    org = await control.signup()
    email, user = await _registered(control)
    invitation = await _invite(control, org, email)
    r = await control.client.get("/v1/members/invitations", headers=org.admin)
    assert [i["email"] for i in r.json()["data"]] == [email]
    r = await control.client.delete(
        f"/v1/members/invitations/{invitation['id']}", headers=org.admin
    )
    assert r.status_code == 200 and r.json()["status"] == "revoked"
    assert (await control.client.get("/v1/members/invitations", headers=org.admin)).json() == {
        "data": []
    }
    r = await control.client.post(f"/v1/invitations/{invitation['id']}/accept", headers=user)
    assert r.status_code == 409 and "revoked" in r.json()["message"]
    r = await control.client.delete(
        f"/v1/members/invitations/{invitation['id']}", headers=org.admin
    )
    assert r.status_code == 409
    log = (await control.client.get("/v1/audit?limit=1000", headers=org.admin)).json()["data"]
    assert log[-1]["action"] == "member.invitation_revoked"
    # With the old one withdrawn, the email can be invited again.
    await _invite(control, org, email)


async def test_invitations_expire(control: ControlPlane) -> None:
    org = await control.signup()
    email, user = await _registered(control)
    invitation = await _invite(control, org, email)
    control.clock.advance(control.app.state.settings.invitation_ttl)
    r = await control.client.post(f"/v1/invitations/{invitation['id']}/accept", headers=user)
    assert r.status_code == 409 and r.json()["message"] == "this invitation is expired"
    assert (await control.client.get("/v1/invitations", headers=user)).json()["data"] == []
    listed = (await control.client.get("/v1/members/invitations", headers=org.admin)).json()
    assert [i["status"] for i in listed["data"]] == ["expired"]
    await _invite(control, org, email)  # an expired invitation does not block a new one


async def test_what_cannot_be_invited(control: ControlPlane) -> None:
    org = await control.signup()
    email = f"twice-{secrets.token_hex(3)}@example.com"
    await _invite(control, org, email)
    r = await control.client.post(
        "/v1/members", headers=org.admin, json={"email": email.upper(), "role": "admin"}
    )
    assert r.status_code == 409 and r.json()["error"] == "already_invited"
    r = await control.client.post(
        "/v1/members", headers=org.admin, json={"email": org.owner_email, "role": "viewer"}
    )
    assert r.status_code == 409 and r.json()["error"] == "already_member"
    admin = await control.user(org, "admin")
    owner_invite = {"email": "boss@example.com", "role": "owner"}
    r = await control.client.post("/v1/members", headers=admin, json=owner_invite)
    assert r.status_code == 403  # only owners make owners, by invitation too
    r = await control.client.post("/v1/members", headers=org.owner, json=owner_invite)
    assert r.status_code == 201


async def test_accepting_an_owner_invitation_makes_an_owner(control: ControlPlane) -> None:
    org = await control.signup()
    email, user = await _registered(control)
    r = await control.client.post(
        "/v1/members", headers=org.owner, json={"email": email, "role": "owner"}
    )
    accepted = await control.client.post(f"/v1/invitations/{r.json()['id']}/accept", headers=user)
    assert accepted.status_code == 200
    me = await control.client.get("/v1/orgs", headers=user)
    assert {o["slug"]: o["role"] for o in me.json()["data"]}[org.slug] == "owner"


async def test_an_unknown_invitation_is_not_found(control: ControlPlane) -> None:
    _, user = await _registered(control)
    for invitation_id in ("999999", "64207746283703952888056250368", "-1"):
        r: httpx.Response = await control.client.post(
            f"/v1/invitations/{invitation_id}/accept", headers=user
        )
        assert r.status_code == 404, r.text
