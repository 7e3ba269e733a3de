"""A project's publishable embed keys: create (identity secret shown once), list, change,
rotate, revoke. Every change is audited and pushed to the data planes, which cache keys and
the origins they allow for a few seconds."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from karta.controlplane import embed_keys
from karta.controlplane.actor import Actor
from karta.controlplane.deps import ORG_ERRORS, require, transaction
from karta.controlplane.permissions import Permission
from karta.controlplane.schemas import CreateEmbedKey, UpdateEmbedKey
from karta.controlplane.views import CreatedEmbedKey, EmbedKeyView, Listing
from karta.core import embed
from karta.core.clock import utcnow
from karta.core.http_errors import error_responses

router = APIRouter(
    prefix="/v1/projects/{ref}/embed_keys",
    tags=["embed keys"],
    responses={**ORG_ERRORS, **error_responses(422)},
)
Reader = Annotated[Actor, Depends(require(Permission.EMBED_KEYS_READ))]
Manager = Annotated[Actor, Depends(require(Permission.EMBED_KEYS_MANAGE))]


@router.get("", response_model=Listing[EmbedKeyView])
async def list_embed_keys(ref: str, request: Request, actor: Reader) -> dict[str, Any]:
    async with transaction(request, actor) as tx:
        project = await tx.repo.project(ref)
        keys = await tx.repo.embed_keys(project.id)
        return {"data": [embed_keys.public_embed_key(k, project) for k in keys]}


@router.post("", status_code=201, response_model=CreatedEmbedKey)
async def create_embed_key(
    ref: str, body: CreateEmbedKey, request: Request, actor: Manager
) -> dict[str, Any]:
    """A new publishable key for the project. Its identity secret is in this answer only."""
    async with transaction(request, actor, invalidate_planes=True) as tx:
        project = await tx.repo.project(ref)
        key, secret = await embed_keys.create(
            tx.repo, request.app.state.secretbox, actor, project, body.model_dump()
        )
        return {"embed_key": embed_keys.public_embed_key(key, project), "identity_secret": secret}


@router.get("/{key_id}", response_model=EmbedKeyView)
async def get_embed_key(ref: str, key_id: int, request: Request, actor: Reader) -> dict[str, Any]:
    async with transaction(request, actor) as tx:
        project = await tx.repo.project(ref)
        key = await tx.repo.embed_key(project.id, key_id)
        return embed_keys.public_embed_key(key, project)


@router.patch("/{key_id}", response_model=EmbedKeyView)
async def update_embed_key(
    ref: str, key_id: int, body: UpdateEmbedKey, request: Request, actor: Manager
) -> dict[str, Any]:
    """Change what the key admits or how its widget looks; fields left out stay as they are."""
    async with transaction(request, actor, invalidate_planes=True) as tx:
        project = await tx.repo.project(ref)
        key = await tx.repo.embed_key(project.id, key_id)
        changes = body.model_dump(include=body.model_fields_set)
        for name, value in changes.items():
            setattr(key, name, value)
        key.updated_at = utcnow()
        await embed_keys.audit_change(tx.repo, actor, "embed_key.updated", key, project, **changes)
        return embed_keys.public_embed_key(key, project)


@router.post("/{key_id}/rotate", response_model=CreatedEmbedKey)
async def rotate_embed_key(
    ref: str, key_id: int, request: Request, actor: Manager
) -> dict[str, Any]:
    """Replace the publishable key and its identity secret; the old ones stop working now."""
    async with transaction(request, actor, invalidate_planes=True) as tx:
        project = await tx.repo.project(ref)
        key = await tx.repo.embed_key(project.id, key_id)
        key.key = embed.new_embed_key()
        key.updated_at = utcnow()
        secret = embed_keys.seal_identity_secret(request.app.state.secretbox, key)
        await embed_keys.audit_change(tx.repo, actor, "embed_key.rotated", key, project)
        return {"embed_key": embed_keys.public_embed_key(key, project), "identity_secret": secret}


@router.delete("/{key_id}", response_model=EmbedKeyView)
async def revoke_embed_key(
    ref: str, key_id: int, request: Request, actor: Manager
) -> dict[str, Any]:
    """Revoke for good: pages using the key can no longer get tokens."""
    async with transaction(request, actor, invalidate_planes=True) as tx:
        project = await tx.repo.project(ref)
        key = await tx.repo.embed_key(project.id, key_id)
        if key.revoked_at is None:
            key.revoked_at = key.updated_at = utcnow()
            await embed_keys.audit_change(tx.repo, actor, "embed_key.revoked", key, project)
        return embed_keys.public_embed_key(key, project)
