"""Members of the current organization and their roles."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from karta.controlplane import credentials, permissions
from karta.controlplane.actor import Actor
from karta.controlplane.deps import ORG_ERRORS, require, transaction
from karta.controlplane.models import Membership, User
from karta.controlplane.permissions import Permission
from karta.controlplane.schemas import AddMember, UpdateMember
from karta.controlplane.views import Listing, MemberView
from karta.errors import Conflict, Forbidden, NotFound
from karta.http_errors import error_responses

router = APIRouter(prefix="/v1/members", tags=["members"], responses=ORG_ERRORS)
Reader = Annotated[Actor, Depends(require(Permission.MEMBERS_READ))]
Manager = Annotated[Actor, Depends(require(Permission.MEMBERS_MANAGE))]


class UserNotFound(NotFound):
    code = "user_not_found"


class AlreadyMember(Conflict):
    code = "already_member"


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


@router.post("", status_code=201, response_model=MemberView, responses=error_responses(409, 422))
async def add_member(body: AddMember, request: Request, actor: Manager) -> dict[str, Any]:
    _may_touch(actor, body.role)
    async with transaction(request, actor) as tx:
        user = await credentials.user_by_email(tx.session, body.email)
        if user is None:
            raise UserNotFound("no user has this email: they sign up first")
        if any(u.id == user.id for _, u in await tx.repo.members()):
            raise AlreadyMember("this user is already a member")
        membership = Membership(user_id=user.id, role=body.role)
        tx.repo.add(membership)
        await tx.session.flush()
        await tx.audit("member.added", "member", user.id, role=body.role)
        return _member(membership, user)


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
