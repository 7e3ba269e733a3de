"""The usage ledger: idempotent ingestion of metered model calls and period summaries.

A batch's ledger rows and their per-day roll-ups commit in one transaction; an `event_id` seen
before is skipped, so the data plane may retry freely.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from karta.controlplane import budgets
from karta.controlplane.models import UsageDaily
from karta.controlplane.repository import OrgRepository
from karta.controlplane.repository_money import TOKEN_FIELDS
from karta.core.clock import utcnow
from karta.core.errors import NotFound
from karta.core.money import Micros, PriceBook, TokenUsage


@dataclass(frozen=True)
class Metered:
    """One model call (or a turn of a harness the proxy does not see), as the data plane
    reports it."""

    event_id: str
    organization_id: int
    api_key_id: int | None
    project_id: int | None
    session_id: str | None
    turn_id: str | None
    model: str | None
    usage: TokenUsage
    occurred_at: datetime
    embed_key_id: int | None = None
    provider: str | None = None
    key_owner: str = "platform"


@dataclass
class Ingested:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[str] = field(default_factory=list)
    crossed: set[int] = field(default_factory=set)  # orgs that ran out with this batch


async def ingest(
    session: AsyncSession, prices: PriceBook, batch: list[Metered], *, own_keys_capped: bool = True
) -> Ingested:
    """Record a batch, priced per provider and model. An event naming a key of another
    organization is rejected, so a data plane cannot bill one org's key to another. Without
    `own_keys_capped`, calls paid with the organization's own provider keys cost what they cost
    but count nothing toward the cost cap."""
    result = Ingested()
    before: dict[int, str | None] = {}
    for item in batch:
        repo = OrgRepository(session, item.organization_id)
        try:
            if item.organization_id not in before:
                before[item.organization_id] = await budgets.exhausted(repo)
            if item.api_key_id is not None:
                await repo.key(item.api_key_id)
        except NotFound:  # an unknown org, or a key of another org
            result.rejected.append(item.event_id)
            continue
        cost = prices.cost(item.model, item.usage, item.provider).value
        values = {
            "client_event_id": item.event_id,
            "api_key_id": item.api_key_id,
            "project_id": item.project_id,
            "embed_key_id": item.embed_key_id,
            "session_id": item.session_id,
            "turn_id": item.turn_id,
            "model": item.model,
            "cost_micros": cost,
            "cap_cost_micros": cost if own_keys_capped or item.key_owner == "platform" else 0,
            "provider": item.provider,
            "key_owner": item.key_owner,
            "occurred_at": item.occurred_at,
            "recorded_at": utcnow(),
            **{name: getattr(item.usage, name) for name in TOKEN_FIELDS},
        }
        if not await repo.record_usage(values):
            result.duplicates += 1
            continue
        result.accepted += 1
    for org_id, was in before.items():
        if was is None and await budgets.exhausted(OrgRepository(session, org_id)) is not None:
            result.crossed.add(org_id)
    return result


def _totals(rows: list[UsageDaily]) -> dict[str, int]:
    totals = {name: 0 for name in ("model_calls", *TOKEN_FIELDS, "cost_micros")}
    for row in rows:
        for name in totals:
            totals[name] += int(getattr(row, name))
    return totals


def _priced(totals: dict[str, int]) -> dict[str, int]:
    return {
        **totals,
        "total_tokens": totals["input_tokens"] + totals["output_tokens"],
        "cost_cents": Micros(totals["cost_micros"]).to_cents().value,
    }


async def summary(repo: OrgRepository, start: date, end: date) -> dict[str, Any]:
    rows = await repo.usage_days(start, end)
    by_day: dict[date, list[UsageDaily]] = {}
    by_key: dict[int, list[UsageDaily]] = {}
    for row in rows:
        by_day.setdefault(row.day, []).append(row)
        by_key.setdefault(row.api_key_id, []).append(row)
    return {
        "period": {"start": start.isoformat(), "end": end.isoformat()},
        "totals": _priced(_totals(rows)),
        "daily": [
            {"day": day.isoformat(), **_priced(_totals(day_rows))}
            for day, day_rows in sorted(by_day.items())
        ],
        "by_key": [
            {"api_key_id": key_id or None, **_priced(_totals(key_rows))}
            for key_id, key_rows in sorted(by_key.items())
        ],
        "by_model": [
            {**row, "cost_cents": Micros(row["cost_micros"]).to_cents().value}
            for row in await repo.usage_by_model(
                budgets.at_midnight(start), budgets.at_midnight(end)
            )
        ],
        "budget": await budgets.state(repo, start, end),
    }
