"""Monthly budgets: the state of an org's (and a key's) caps, and turn reservations.

A turn reserves `turn_reserve_tokens` (and their cost at the most expensive price) before it
runs and is admitted only if spent + open reservations + its own reservation fit under every
cap; its usage event settles the reservation. Concurrent turns therefore overspend only by what
a turn uses beyond its reservation: with N turns in flight, at most N × (largest turn − reserve).
Reservations of turns that never report expire after `reservation_ttl`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from karta.controlplane.models import ApiKey, Budget, Reservation
from karta.controlplane.repository import OrgRepository
from karta.core.errors import BudgetExhausted
from karta.core.money import Cents, Micros, PriceBook


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


async def reserve(
    repo: OrgRepository,
    prices: PriceBook,
    reservation_id: str,
    api_key: ApiKey | None,
    tokens: int,
    ttl: float,
) -> Reservation:
    """Admit a turn or raise `BudgetExhausted`. Idempotent on `reservation_id`."""
    budget = await repo.budget(lock=True)  # serializes reservations within the org
    existing = await repo.reservation(reservation_id)
    if existing is not None:
        return existing
    cost = prices.most(tokens).value
    now = repo.clock.now()
    start, end = period_bounds(now.date())
    checks: list[tuple[Caps, int | None, str]] = [(org_caps(budget), None, "")]
    if api_key is not None:
        checks.append((key_caps(api_key), api_key.id, "key_"))
    for caps, key_id, label in checks:
        if not caps.any:
            continue
        spent_tokens, spent_cost = await repo.spent(start, end, key_id)
        held_tokens, held_cost = await repo.reserved(now, key_id)
        reason = caps.exceeded(spent_tokens + held_tokens + tokens, spent_cost + held_cost + cost)
        if reason:
            raise BudgetExhausted(label + reason)
    row = Reservation(
        id=reservation_id,
        api_key_id=api_key.id if api_key is not None else None,
        tokens=tokens,
        cost_micros=cost,
        created_at=now,
        expires_at=now + timedelta(seconds=ttl),
    )
    repo.add(row)
    return row
