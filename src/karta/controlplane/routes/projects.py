"""Projects of the current organization, and session tokens for their end users."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from karta.controlplane import budgets, orgs
from karta.controlplane.actor import Actor
from karta.controlplane.deps import ORG_ERRORS, require, transaction
from karta.controlplane.models import Project
from karta.controlplane.permissions import Permission
from karta.controlplane.schemas import CreateProject, MintSessionToken
from karta.controlplane.views import Listing, ProjectView, SessionToken
from karta.core import session_tokens
from karta.core.end_users import check_end_user_id
from karta.core.errors import BudgetExhausted, Conflict, Unavailable
from karta.core.http_errors import error_responses

router = APIRouter(prefix="/v1/projects", tags=["projects"], responses=ORG_ERRORS)
Reader = Annotated[Actor, Depends(require(Permission.PROJECTS_READ))]
Writer = Annotated[Actor, Depends(require(Permission.PROJECTS_WRITE))]
Minter = Annotated[Actor, Depends(require(Permission.SESSION_TOKENS_MINT))]


class ProjectExists(Conflict):
    code = "project_exists"


def public_project(project: Project) -> dict[str, Any]:
    return {
        "id": project.id,
        "object": "project",
        "slug": project.slug,
        "name": project.name,
        "organization_id": project.organization_id,
        "created_at": project.created_at.isoformat(),
    }


@router.get("", response_model=Listing[ProjectView])
async def list_projects(request: Request, actor: Reader) -> dict[str, Any]:
    async with transaction(request, actor) as tx:
        return {"data": [public_project(p) for p in await tx.repo.projects()]}


@router.post("", status_code=201, response_model=ProjectView, responses=error_responses(409, 422))
async def create_project(body: CreateProject, request: Request, actor: Writer) -> dict[str, Any]:
    async with transaction(request, actor) as tx:
        if await tx.repo.find_project(body.slug) is not None:
            raise ProjectExists(f"project {body.slug!r} already exists")
        project = await orgs.create_project(tx.repo, actor, body.slug, body.name)
        return public_project(project)


@router.get("/{ref}", response_model=ProjectView, responses=error_responses(422))
async def get_project(ref: str, request: Request, actor: Reader) -> dict[str, Any]:
    async with transaction(request, actor) as tx:
        return public_project(await tx.repo.project(ref))


@router.post(
    "/{ref}/session_tokens",
    status_code=201,
    response_model=SessionToken,
    responses=error_responses(402, 422, 503),
)
async def mint_session_token(
    ref: str, body: MintSessionToken, request: Request, actor: Minter
) -> dict[str, Any]:
    """A short-lived token an end user's browser may hold: valid on this project's routes only,
    bound to `sub` when given. Refused while the organization's budget is spent."""
    secret = request.app.state.settings.session_token_secret
    if not secret:
        raise Unavailable("session tokens are not configured (KARTA_SESSION_TOKEN_SECRET)")
    if body.sub is not None:
        check_end_user_id(body.sub)
    async with transaction(request, actor) as tx:
        project = await tx.repo.project(ref)
        org = await tx.repo.organization()
        key = await tx.repo.key(actor.api_key_id) if actor.api_key_id else None
        reason = await budgets.exhausted(tx.repo, key)
    if reason:
        raise BudgetExhausted(reason)
    exp = session_tokens.expiry(body.ttl_seconds)
    claims = session_tokens.SessionClaims(
        org_id=org.id,
        org_slug=org.slug,
        project_id=project.id,
        project_slug=project.slug,
        exp=exp,
        sub=body.sub,
    )
    return {
        "token": session_tokens.mint(secret, claims),
        "expires_at": datetime.fromtimestamp(exp, UTC).isoformat(),
        "project": public_project(project),
        "sub": body.sub,
    }
