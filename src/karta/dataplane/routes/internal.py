"""The data plane's internal API, called by the control plane with a service token: who am I,
and the cache invalidation the control plane pushes when a key is revoked, a budget changes, a
release is activated or rolled back, or a project's env vars change.
Guarded by `karta.internal_auth` and left out of the OpenAPI document."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from karta.internal_auth import require_service

router = APIRouter(
    prefix="/v1/internal", dependencies=[Depends(require_service)], include_in_schema=False
)


class Invalidate(BaseModel):
    organization_id: int = Field(ge=1, le=2**63 - 1)


@router.get("/whoami")
async def whoami() -> dict[str, Any]:
    return {"principal_kind": "service"}


@router.post("/cache/invalidate")
async def invalidate(body: Invalidate, request: Request) -> dict[str, Any]:
    evicted = request.app.state.auth.evict(body.organization_id)
    pointers, envs = request.app.state.releases.evict(body.organization_id)
    return {
        "organization_id": body.organization_id,
        "evicted": evicted,
        "active_release_evicted": pointers,
        "env_evicted": envs,
    }
