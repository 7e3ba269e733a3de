"""The data plane's internal API, called by the control plane with a service token: who am I,
and the cache invalidation the control plane pushes when a key is revoked, a budget changes, a
release is activated or rolled back, a project's env vars change, or a provider key or model
setting changes. Its bodies and answers are
the planes' contract (`karta.core.internal_api`). Guarded by `karta.core.internal_auth` and
left out of the OpenAPI document."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from karta.core import internal_api as api
from karta.core.internal_auth import require_service

router = APIRouter(dependencies=[Depends(require_service)], include_in_schema=False)


@router.get(api.DATA_WHOAMI)
async def whoami() -> api.ServicePrincipal:
    return api.ServicePrincipal(principal_kind="service")


@router.post(api.INVALIDATE)
async def invalidate(body: api.Invalidate, request: Request) -> api.Invalidated:
    evicted = request.app.state.auth.evict(body.organization_id)
    pointers, envs = request.app.state.releases.evict(body.organization_id)
    return api.Invalidated(
        organization_id=body.organization_id,
        evicted=evicted,
        active_release_evicted=pointers,
        env_evicted=envs,
        model_access_evicted=request.app.state.model_access.evict(body.organization_id),
    )
