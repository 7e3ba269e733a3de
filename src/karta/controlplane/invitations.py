"""Joining an organization by invitation.

An admin invites an email to a role; nobody becomes a member until a user logged in with that
email accepts. Inviting never looks the email up among users, so its answer is the same whether
or not the address has an account, and an organization can neither add people without their
consent nor probe who is registered. Invitations expire after `invitation_ttl`; every step is
audited in the inviting organization's log.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from karta.controlplane import audit, credentials, orgs
from karta.controlplane.actor import Actor
from karta.controlplane.deps import Tx
from karta.controlplane.models import Invitation, Membership, Organization, User
from karta.controlplane.repository import InvitationNotFound, OrgRepository
from karta.core.errors import Conflict


class AlreadyMember(Conflict):
    code = "already_member"


class AlreadyInvited(Conflict):
    code = "already_invited"


class InvitationNotPending(Conflict):
    code = "invitation_not_pending"


def status(invitation: Invitation, now: datetime) -> str:
    if invitation.status == "pending" and invitation.expires_at <= now:
        return "expired"
    return invitation.status


def public(invitation: Invitation, org: Organization, now: datetime) -> dict[str, Any]:
    return {
        "id": invitation.id,
        "object": "invitation",
        "organization": orgs.public_org(org),
        "email": invitation.email,
        "role": invitation.role,
        "status": status(invitation, now),
        "invited_by": invitation.invited_by,
        "created_at": invitation.created_at.isoformat(),
        "expires_at": invitation.expires_at.isoformat(),
    }


async def invite(tx: Tx, email: str, role: str, ttl: float) -> Invitation:
    """A pending invitation of `email` (already normalized) to `role`."""
    await tx.repo.audit_head(lock=True)  # one invitation at a time per organization
    if any(user.email == email for _, user in await tx.repo.members()):
        raise AlreadyMember("this email belongs to a member already")
    now = tx.repo.clock.now()
    if await tx.repo.open_invitation(email, now) is not None:
        raise AlreadyInvited("this email has a pending invitation: revoke it to invite again")
    invitation = Invitation(
        email=email,
        role=role,
        status="pending",
        invited_by=tx.actor.actor_id,
        created_at=now,
        expires_at=now + timedelta(seconds=ttl),
    )
    tx.repo.add(invitation)
    await tx.session.flush()
    await tx.audit("member.invited", "invitation", invitation.id, email=email, role=role)
    return invitation


async def revoke(tx: Tx, invitation_id: int) -> Invitation:
    invitation = await tx.repo.invitation(invitation_id)
    now = tx.repo.clock.now()
    if invitation.status != "pending":  # an expired one may still be withdrawn
        raise InvitationNotPending(f"this invitation is {invitation.status}")
    invitation.status, invitation.responded_at = "revoked", now
    await tx.audit("member.invitation_revoked", "invitation", invitation.id, email=invitation.email)
    return invitation


async def respond(
    session: AsyncSession, actor: Actor, invitation_id: int, *, accept: bool
) -> tuple[Invitation, OrgRepository]:
    """The invitee accepts (and becomes a member) or declines. An invitation addressed to
    another email is not found, exactly like one that does not exist."""
    user = await session.get(User, actor.user_id)
    assert user is not None, "a logged-in actor's user exists"
    invitation = await credentials.invitation_for(session, invitation_id, user.email)
    if invitation is None:
        raise InvitationNotFound(f"invitation {invitation_id} not found")
    repo = OrgRepository(session, invitation.organization_id)
    now = repo.clock.now()
    if (current := status(invitation, now)) != "pending":
        raise InvitationNotPending(f"this invitation is {current}")
    if accept:
        if any(member.id == user.id for _, member in await repo.members()):
            raise AlreadyMember("you are a member of this organization already")
        repo.add(Membership(user_id=user.id, role=invitation.role))
        await audit.record(
            repo,
            actor,
            "member.added",
            "member",
            user.id,
            role=invitation.role,
            invitation=invitation.id,
        )
    else:
        await audit.record(repo, actor, "member.invitation_declined", "invitation", invitation.id)
    invitation.status, invitation.responded_at = ("accepted" if accept else "declined"), now
    return invitation, repo
