"""The organization's own provider keys (BYOK) — create (checked with the provider unless
`validate=false`), list, get, revoke — and its model settings, each for the organization or one
project (`project`). Keys are shown by their last four characters only; every change is audited
and pushed to the data planes, whose model proxy is the only place a key is used."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from karta.controlplane import provider_checks
from karta.controlplane.actor import Actor
from karta.controlplane.deps import ORG_ERRORS, Tx, require, transaction
from karta.controlplane.models import ModelSettings, Project
from karta.controlplane.permissions import Permission
from karta.controlplane.provider_keys import public_key, public_settings, shred, store_key
from karta.controlplane.schemas import CreateProviderKey, SetModelSettings
from karta.controlplane.views import (
    CreatedProviderKey,
    Listing,
    ModelSettingsView,
    ProviderKeyView,
)
from karta.core.clock import utcnow
from karta.core.http_errors import error_responses
from karta.core.providers import CUSTOM_ENDPOINT

router = APIRouter(tags=["provider keys"], responses={**ORG_ERRORS, **error_responses(422)})
Reader = Annotated[Actor, Depends(require(Permission.PROVIDER_KEYS_READ))]
Manager = Annotated[Actor, Depends(require(Permission.PROVIDER_KEYS_MANAGE))]
ProjectRef = Annotated[
    str | None, Query(max_length=64, description="a project's slug or id; omit for the org")
]


async def _project(tx: Tx, ref: str | None) -> Project | None:
    return await tx.repo.project(ref) if ref is not None else None


async def _slugs(tx: Tx) -> dict[int, Project]:
    return {p.id: p for p in await tx.repo.projects()}


@router.get("/v1/provider_keys", response_model=Listing[ProviderKeyView])
async def list_provider_keys(
    request: Request, actor: Reader, project: ProjectRef = None
) -> dict[str, Any]:
    """Every key of the organization (or of one project), active and revoked."""
    async with transaction(request, actor) as tx:
        scope = await _project(tx, project)
        projects = await _slugs(tx)
        rows = [
            r for r in await tx.repo.provider_keys() if scope is None or r.project_id == scope.id
        ]
        return {
            "data": [public_key(r, projects.get(r.project_id or 0)) for r in rows],
        }


@router.post(
    "/v1/provider_keys",
    status_code=201,
    response_model=CreatedProviderKey,
    responses=error_responses(502),
)
async def create_provider_key(
    body: CreateProviderKey,
    request: Request,
    actor: Manager,
    validate: Annotated[
        bool, Query(description="check the key with one call to the provider first")
    ] = True,
) -> dict[str, Any]:
    """Set the key of a provider for the organization or a project; it replaces (revokes) the
    one active before it."""
    settings = request.app.state.settings
    material = provider_checks.checked_material(body.provider, body.credential)
    async with transaction(request, actor) as tx:
        await _project(tx, body.project)  # an unknown project is a 404 before any call out
    if validate:
        await provider_checks.verify(body.provider, material, settings.providers)
    async with transaction(request, actor, invalidate_planes=True) as tx:
        project = await _project(tx, body.project)
        row, replaced = await store_key(
            tx, request.app.state.secretbox, project, body.provider, body.label, material
        )
        return {**public_key(row, project), "replaced": replaced}


@router.get("/v1/provider_keys/{key_id}", response_model=ProviderKeyView)
async def get_provider_key(key_id: int, request: Request, actor: Reader) -> dict[str, Any]:
    async with transaction(request, actor) as tx:
        row = await tx.repo.provider_key(key_id)
        return public_key(row, (await _slugs(tx)).get(row.project_id or 0))


@router.delete("/v1/provider_keys/{key_id}", response_model=ProviderKeyView)
async def revoke_provider_key(key_id: int, request: Request, actor: Manager) -> dict[str, Any]:
    """Revoke and shred the key at once; the data planes drop it from their caches, and the
    next model call uses the org's key, or the platform's when none is left for the provider."""
    async with transaction(request, actor, invalidate_planes=True) as tx:
        row = await tx.repo.provider_key(key_id, lock=True)
        if row.slot is not None:
            shred(row)
            await tx.audit("provider_key.revoked", "provider_key", row.id, reason="revoked")
        return public_key(row, (await _slugs(tx)).get(row.project_id or 0))


# --- model settings ------------------------------------------------------------------------------


@router.get("/v1/model_settings", response_model=ModelSettingsView)
async def get_model_settings(
    request: Request, actor: Reader, project: ProjectRef = None
) -> dict[str, Any]:
    """The settings of the organization, or those a project overrides them with (all null when
    it has none of its own)."""
    async with transaction(request, actor) as tx:
        scope = await _project(tx, project)
        row = await tx.repo.model_settings(scope.id if scope else None)
        return public_settings(row, scope)


@router.put("/v1/model_settings", response_model=ModelSettingsView)
async def set_model_settings(
    body: SetModelSettings, request: Request, actor: Manager, project: ProjectRef = None
) -> dict[str, Any]:
    """Replace the settings of the organization or of a project (a project's replace the
    organization's whole, not field by field)."""
    endpoint = None
    if body.endpoint_url is not None:
        if body.provider not in CUSTOM_ENDPOINT:
            raise provider_checks.InvalidEndpoint(
                "endpoint_url needs provider anthropic or openai (a compatible endpoint)"
            )
        endpoint = await provider_checks.check_endpoint(
            body.endpoint_url, allow_private=request.app.state.settings.allow_private_endpoints
        )
    async with transaction(request, actor, invalidate_planes=True) as tx:
        scope = await _project(tx, project)
        row = await tx.repo.model_settings(scope.id if scope else None)
        if row is None:
            row = ModelSettings(scope=scope.id if scope else 0)
            tx.repo.add(row)
        row.provider, row.model, row.endpoint_url = body.provider, body.model, endpoint
        row.updated_at = utcnow()
        await tx.session.flush()
        await tx.audit(
            "model_settings.set",
            "model_settings",
            row.id,
            project=scope.slug if scope else None,
            provider=row.provider,
            model=row.model,
            endpoint_url=row.endpoint_url,
        )
        return public_settings(row, scope)


@router.delete("/v1/model_settings", status_code=204)
async def clear_model_settings(
    request: Request, actor: Manager, project: ProjectRef = None
) -> Response:
    async with transaction(request, actor, invalidate_planes=True) as tx:
        scope = await _project(tx, project)
        row = await tx.repo.model_settings(scope.id if scope else None)
        if row is not None:
            await tx.session.delete(row)
            await tx.audit(
                "model_settings.cleared",
                "model_settings",
                row.id,
                project=scope.slug if scope else None,
            )
    return Response(status_code=204)
