"""Budgets and usage of the current organization."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from karta.controlplane import budgets, usage
from karta.controlplane.actor import Actor
from karta.controlplane.deps import ORG_ERRORS, require, transaction
from karta.controlplane.permissions import Permission
from karta.controlplane.repository import OrgRepository
from karta.controlplane.schemas import Limits
from karta.controlplane.views import BudgetView, UsageSummary
from karta.core.clock import utcnow
from karta.core.errors import BadRequest
from karta.core.http_errors import ValidationFailed, error_responses

router = APIRouter(prefix="/v1", tags=["money"], responses=ORG_ERRORS)
BudgetReader = Annotated[Actor, Depends(require(Permission.BUDGET_READ))]
BudgetManager = Annotated[Actor, Depends(require(Permission.BUDGET_MANAGE))]
UsageReader = Annotated[Actor, Depends(require(Permission.USAGE_READ))]


async def _this_month(repo: OrgRepository) -> dict[str, Any]:
    """The caps and the current month's state, as both budget routes answer."""
    start, end = budgets.period_bounds(repo.clock.now().date())
    return {
        "period": {"start": start.isoformat(), "end": end.isoformat()},
        **await budgets.state(repo, start, end),
    }


@router.get("/budget", response_model=BudgetView)
async def get_budget(request: Request, actor: BudgetReader) -> dict[str, Any]:
    async with transaction(request, actor) as tx:
        return await _this_month(tx.repo)


@router.put("/budget", response_model=BudgetView, responses=error_responses(422))
async def set_budget(body: Limits, request: Request, actor: BudgetManager) -> dict[str, Any]:
    """Replace the monthly caps (null clears one). The data planes re-check at once."""
    async with transaction(request, actor) as tx:
        budget = await tx.repo.budget(lock=True)
        before = {
            "monthly_token_limit": budget.monthly_token_limit,
            "monthly_cost_limit_cents": budget.monthly_cost_limit_cents,
        }
        budget.monthly_token_limit = body.monthly_token_limit
        budget.monthly_cost_limit_cents = body.monthly_cost_limit_cents
        budget.updated_at = utcnow()
        await tx.audit(
            "budget.changed",
            "budget",
            actor.organization_id,
            before=before,
            after=body.model_dump(),
        )
        view = await _this_month(tx.repo)
    await request.app.state.planes.invalidate(actor.organization_id)
    return view


@router.get("/usage", response_model=UsageSummary, responses=error_responses(422))
async def get_usage(
    request: Request,
    actor: UsageReader,
    period: Annotated[str | None, Query(description="YYYY-MM; default: this month")] = None,
) -> dict[str, Any]:
    async with transaction(request, actor) as tx:
        try:
            start, end = budgets.period_of(period, tx.repo.clock.now().date())
        except budgets.PeriodOutOfRange as exc:
            raise ValidationFailed(("period", str(exc))) from exc
        except ValueError as exc:
            raise BadRequest(str(exc), field="period") from exc
        return await usage.summary(tx.repo, start, end)
