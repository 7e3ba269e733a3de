"""Monthly budgets: the state of an org's (and a key's) caps, and the check that admits a turn
and each of its model calls.

The data plane asks before a turn runs and again before every model call the turn makes,
sending the usage it has metered but not yet shipped. A check passes while spent + pending is
under every cap, so the only spend a check cannot see is that of model calls already in flight:
with N turns running, a cap is overrun by at most N model calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from karta.controlplane.models import ApiKey, Budget
from karta.controlplane.repository import OrgRepository
from karta.core.errors import BudgetExhausted
from karta.core.money import Cents, Micros, PriceBook, TokenUsage


class PeriodOutOfRange(ValueError):
    """A well-formed month that dates cannot bound (December 9999 has no next month)."""


def period_bounds(day: date) -> tuple[date, date]:
    """The calendar month (UTC) holding `day`, as [start, end)."""
    start = day.replace(day=1)
    if (start.year, start.month) == (date.max.year, 12):
        raise PeriodOutOfRange(f"{start:%Y-%m} is past the last supported month")
    end = (start + timedelta(days=32)).replace(day=1)
    return start, end


def period_of(label: str | None, today: date) -> tuple[date, date]:
    """The month named `YYYY-MM`, or the one holding `today`. A malformed label is a
    ValueError, a month out of range a `PeriodOutOfRange`."""
    if not label:
        return period_bounds(today)
    try:
        start = datetime.strptime(label, "%Y-%m").date()
    except ValueError as exc:
        raise ValueError("period must look like YYYY-MM") from exc
    return period_bounds(start)


def at_midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


@dataclass(frozen=True)
class Caps:
    tokens: int | None
    cost_cents: int | None

    def exceeded(self, tokens: int, cost_micros: int) -> str | None:
        """Which cap `tokens`/`cost_micros` go over, if any."""
        if self.tokens is not None and tokens > self.tokens:
            return "monthly_token_limit"
        if self.cost_cents is not None and Micros(cost_micros) > Cents(self.cost_cents).to_micros():
            return "monthly_cost_limit"
        return None

    def reached(self, tokens: int, cost_micros: int) -> str | None:
        """Which cap is already spent (nothing more fits)."""
        if self.tokens is not None and tokens >= self.tokens:
            return "monthly_token_limit"
        if (
            self.cost_cents is not None
            and Micros(cost_micros) >= Cents(self.cost_cents).to_micros()
        ):
            return "monthly_cost_limit"
        return None

    @property
    def any(self) -> bool:
        return self.tokens is not None or self.cost_cents is not None


def org_caps(budget: Budget) -> Caps:
    return Caps(budget.monthly_token_limit, budget.monthly_cost_limit_cents)


def key_caps(key: ApiKey) -> Caps:
    return Caps(key.monthly_token_limit, key.monthly_cost_limit_cents)


async def exhausted(repo: OrgRepository, api_key: ApiKey | None = None) -> str | None:
    """Why no turn can run now (a cap is fully spent), or None."""
    start, end = period_bounds(repo.clock.now().date())
    caps = org_caps(await repo.budget())
    if caps.any:
        reason = caps.reached(*await repo.spent(start, end))
        if reason:
            return reason
    if api_key is not None and key_caps(api_key).any:
        reason = key_caps(api_key).reached(*await repo.spent(start, end, api_key.id))
        if reason:
            return f"key_{reason}"
    return None


async def state(repo: OrgRepository, start: date, end: date) -> dict[str, Any]:
    budget = await repo.budget()
    caps = org_caps(budget)
    tokens, cost = await repo.spent(start, end)
    current = start <= repo.clock.now().date() < end
    reason = caps.reached(tokens, cost) if current else None
    return {
        "monthly_token_limit": caps.tokens,
        "monthly_cost_limit_cents": caps.cost_cents,
        "used_tokens": tokens,
        "used_cost_micros": cost,
        "used_cost_cents": Micros(cost).to_cents().value,
        "state": "exhausted" if reason else "ok",
        "reason": reason,
        "updated_at": budget.updated_at.isoformat(),
    }


@dataclass(frozen=True)
class Pending:
    """Usage metered on the data plane that has not reached the ledger yet."""

    api_key_id: int | None
    model: str | None
    usage: TokenUsage
    provider: str | None = None
    capped: bool = True  # its cost counts toward the cost cap (see `usage.ingest`)


async def check(
    repo: OrgRepository,
    prices: PriceBook,
    api_key: ApiKey | None,
    pending: list[Pending],
) -> bool:
    """Raise `BudgetExhausted` when a cap of the org (or of `api_key`) is spent, counting the
    data plane's `pending` usage as spent. Returns whether any cap applies."""
    start, end = period_bounds(repo.clock.now().date())
    checks: list[tuple[Caps, int | None, str]] = [(org_caps(await repo.budget()), None, "")]
    if api_key is not None:
        checks.append((key_caps(api_key), api_key.id, "key_"))
    limited = False
    for caps, key_id, label in checks:
        if not caps.any:
            continue
        limited = True
        tokens, cost = await repo.spent(start, end, key_id)
        for item in pending:
            if key_id is None or item.api_key_id == key_id:
                tokens += item.usage.input_tokens + item.usage.output_tokens
                if item.capped:
                    cost += prices.cost(item.model, item.usage, item.provider).value
        reason = caps.reached(tokens, cost)
        if reason:
            raise BudgetExhausted(label + reason)
    return limited
