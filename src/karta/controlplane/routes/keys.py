"""API keys of the current organization: mint (secret shown once), list, limit, revoke."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from karta.controlplane import orgs
from karta.controlplane.actor import Actor
from karta.controlplane.deps import ORG_ERRORS, require, transaction
from karta.controlplane.permissions import Permission
from karta.controlplane.schemas import CreateKey, Limits
from karta.controlplane.views import CreatedKey, KeyView, Listing
from karta.core.clock import utcnow
from karta.core.http_errors import error_responses

router = APIRouter(prefix="/v1/keys", tags=["keys"], responses=ORG_ERRORS)
Reader = Annotated[Actor, Depends(require(Permission.KEYS_READ))]
Manager = Annotated[Actor, Depends(require(Permission.KEYS_MANAGE))]


@router.get("", response_model=Listing[KeyView])
async def list_keys(request: Request, actor: Reader) -> dict[str, Any]:
    async with transaction(request, actor) as tx:
        return {"data": [orgs.public_key(k) for k in await tx.repo.keys()]}


@router.post("", status_code=201, response_model=CreatedKey, responses=error_responses(422))
async def create_key(body: CreateKey, request: Request, actor: Manager) -> dict[str, Any]:
    async with transaction(request, actor) as tx:
        key, secret = await orgs.create_key(
            tx.repo,
            actor,
            body.name,
            list(body.scopes),
            monthly_token_limit=body.monthly_token_limit,
            monthly_cost_limit_cents=body.monthly_cost_limit_cents,
        )
    return {"api_key": orgs.public_key(key), "secret": secret}


@router.get("/{key_id}", response_model=KeyView, responses=error_responses(422))
async def get_key(key_id: int, request: Request, actor: Reader) -> dict[str, Any]:
    async with transaction(request, actor) as tx:
        return orgs.public_key(await tx.repo.key(key_id))


@router.patch("/{key_id}", response_model=KeyView, responses=error_responses(422))
async def update_key(key_id: int, body: Limits, request: Request, actor: Manager) -> dict[str, Any]:
    """Set or clear (null) the key's monthly sub-limits; fields left out stay as they are."""
    async with transaction(request, actor) as tx:
        key = await tx.repo.key(key_id)
        changes = body.model_dump(include=body.model_fields_set)
        for name, value in changes.items():
            setattr(key, name, value)
        await tx.audit("key.limits_changed", "api_key", key.id, **changes)
        view = orgs.public_key(key)
    await request.app.state.planes.invalidate(actor.organization_id)
    return view


@router.delete("/{key_id}", response_model=KeyView, responses=error_responses(422))
async def revoke_key(key_id: int, request: Request, actor: Manager) -> dict[str, Any]:
    """Revoke at once; the data planes are told to drop the key from their caches."""
    async with transaction(request, actor) as tx:
        key = await tx.repo.key(key_id)
        if key.revoked_at is None:
            key.revoked_at = utcnow()
            await tx.audit("key.revoked", "api_key", key.id, prefix=key.prefix)
        view = orgs.public_key(key)
    await request.app.state.planes.invalidate(actor.organization_id)
    return view
