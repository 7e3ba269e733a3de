"""The caller's own invitations: a logged-in user lists those addressed to their email and
accepts (becoming a member) or declines them."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from karta.controlplane import credentials, invitations
from karta.controlplane.actor import Actor
from karta.controlplane.deps import Caller, user_only
from karta.controlplane.models import User
from karta.controlplane.timekeeping import clock_of
from karta.controlplane.views import InvitationView, Listing
from karta.core.http_errors import error_responses

router = APIRouter(
    prefix="/v1/invitations", tags=["invitations"], responses=error_responses(401, 403, 404)
)
HAS = "invitations"


@router.get("", response_model=Listing[InvitationView])
async def my_invitations(request: Request, actor: Caller) -> dict[str, Any]:
    """Pending invitations addressed to your email, in every organization."""
    user_id = user_only(actor, HAS)
    async with request.app.state.db() as session:
        user = await session.get(User, user_id)
        assert user is not None
        now = clock_of(session).now()
        found = await credentials.invitations_for(session, user.email)
    return {
        "data": [
            invitations.public(i, org, now)
            for i, org in found
            if invitations.status(i, now) == "pending"
        ]
    }


async def _respond(
    request: Request, actor: Actor, invitation_id: int, accept: bool
) -> dict[str, Any]:
    user_only(actor, HAS)
    async with request.app.state.db() as session, session.begin():
        invitation, repo = await invitations.respond(session, actor, invitation_id, accept=accept)
        return invitations.public(invitation, await repo.organization(), repo.clock.now())


@router.post(
    "/{invitation_id}/accept", response_model=InvitationView, responses=error_responses(409, 422)
)
async def accept(invitation_id: int, request: Request, actor: Caller) -> dict[str, Any]:
    """Join the organization with the invitation's role."""
    return await _respond(request, actor, invitation_id, accept=True)


@router.post(
    "/{invitation_id}/decline", response_model=InvitationView, responses=error_responses(409, 422)
)
async def decline(invitation_id: int, request: Request, actor: Caller) -> dict[str, Any]:
    return await _respond(request, actor, invitation_id, accept=False)
