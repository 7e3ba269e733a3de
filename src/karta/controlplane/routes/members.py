"""Members of the current organization, their roles, and the invitations that add them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from karta.controlplane import invitations, permissions
from karta.controlplane.actor import Actor
from karta.controlplane.deps import ORG_ERRORS, require, transaction
from karta.controlplane.models import Membership, User
from karta.controlplane.permissions import Permission
from karta.controlplane.schemas import InviteMember, UpdateMember
from karta.controlplane.views import InvitationView, Listing, MemberView
from karta.core.errors import Conflict, Forbidden
from karta.core.http_errors import error_responses

router = APIRouter(prefix="/v1/members", tags=["members"], responses=ORG_ERRORS)
Reader = Annotated[Actor, Depends(require(Permission.MEMBERS_READ))]
Manager = Annotated[Actor, Depends(require(Permission.MEMBERS_MANAGE))]


class LastOwner(Conflict):
    code = "last_owner"


def _member(membership: Membership, user: User) -> dict[str, Any]:
    return {
        "user_id": user.id,
        "object": "member",
        "email": user.email,
        "role": membership.role,
        "created_at": membership.created_at.isoformat(),
    }


def _may_touch(actor: Actor, *roles: str) -> None:
    for role in roles:
        if not permissions.may_assign(actor.role if actor.kind == "user" else None, role):
            raise Forbidden("only an owner can make or unmake an owner", permission="owner")


@router.get("", response_model=Listing[MemberView])
async def list_members(request: Request, actor: Reader) -> dict[str, Any]:
    async with transaction(request, actor) as tx:
        return {"data": [_member(m, u) for m, u in await tx.repo.members()]}


@router.post(
    "", status_code=201, response_model=InvitationView, responses=error_responses(409, 422)
)
async def invite_member(body: InviteMember, request: Request, actor: Manager) -> dict[str, Any]:
    """Invite an email to a role: they become a member when they accept (logged in with that
    email). The answer is the same whether or not the email has an account."""
    _may_touch(actor, body.role)
    ttl = request.app.state.settings.invitation_ttl
    async with transaction(request, actor) as tx:
        invitation = await invitations.invite(tx, body.email, body.role, ttl)
        return invitations.public(invitation, await tx.repo.organization(), tx.repo.clock.now())


@router.get("/invitations", response_model=Listing[InvitationView])
async def list_invitations(request: Request, actor: Manager) -> dict[str, Any]:
    """Invitations nobody has answered yet, expired ones included."""
    async with transaction(request, actor) as tx:
        org, now = await tx.repo.organization(), tx.repo.clock.now()
        pending = await tx.repo.pending_invitations()
        return {"data": [invitations.public(i, org, now) for i in pending]}


@router.delete(
    "/invitations/{invitation_id}",
    response_model=InvitationView,
    responses=error_responses(409, 422),
)
async def revoke_invitation(invitation_id: int, request: Request, actor: Manager) -> dict[str, Any]:
    async with transaction(request, actor) as tx:
        invitation = await invitations.revoke(tx, invitation_id)
        return invitations.public(invitation, await tx.repo.organization(), tx.repo.clock.now())


async def _other_owners(tx: Any, membership: Membership) -> None:
    await tx.repo.audit_head(lock=True)  # serializes concurrent demotions in the org
    if membership.role == "owner" and await tx.repo.owner_count() <= 1:
        raise LastOwner("an organization keeps at least one owner")


@router.patch("/{user_id}", response_model=MemberView, responses=error_responses(409, 422))
async def update_member(
    user_id: int, body: UpdateMember, request: Request, actor: Manager
) -> dict[str, Any]:
    async with transaction(request, actor) as tx:
        membership = await tx.repo.membership(user_id)
        _may_touch(actor, membership.role, body.role)
        if body.role != "owner":
            await _other_owners(tx, membership)
        before = membership.role
        membership.role = body.role
        await tx.audit("member.role_changed", "member", user_id, before=before, after=body.role)
        user = await tx.session.get(User, user_id)
        assert user is not None
        return _member(membership, user)


@router.delete("/{user_id}", status_code=204, responses=error_responses(409, 422))
async def remove_member(user_id: int, request: Request, actor: Manager) -> Response:
    async with transaction(request, actor) as tx:
        membership = await tx.repo.membership(user_id)
        _may_touch(actor, membership.role)
        await _other_owners(tx, membership)
        await tx.session.delete(membership)
        await tx.audit("member.removed", "member", user_id, role=membership.role)
    return Response(status_code=204)
