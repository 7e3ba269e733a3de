"""Reading the organization's audit log (owners and admins)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from karta.controlplane import audit
from karta.controlplane.actor import Actor
from karta.controlplane.deps import ORG_ERRORS, require, transaction
from karta.controlplane.models import MAX_INTEGER
from karta.controlplane.permissions import Permission
from karta.controlplane.views import AuditPage
from karta.core.http_errors import error_responses

router = APIRouter(prefix="/v1/audit", tags=["audit"], responses=ORG_ERRORS)
Reader = Annotated[Actor, Depends(require(Permission.AUDIT_READ))]


@router.get("", response_model=AuditPage, responses=error_responses(422))
async def list_audit(
    request: Request,
    actor: Reader,
    after: Annotated[
        int, Query(ge=0, le=MAX_INTEGER, description="return rows with seq > after")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    async with transaction(request, actor) as tx:
        rows = await tx.repo.audit_events(after, limit)
        head = await tx.repo.audit_head()
    data = [audit.public(r) for r in rows]
    return {
        "data": data,
        "head": {"seq": head.seq, "hash": head.hash},
        "next_after": data[-1]["seq"] if data and data[-1]["seq"] < head.seq else None,
    }
