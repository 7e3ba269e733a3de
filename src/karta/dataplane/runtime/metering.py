"""What the runtime needs from metering: a budget check before a turn runs and before each of
its model calls, and a nudge once usage is in the outbox. The data plane implements it against
the control plane (`karta.dataplane.control.usage`); without one (`karta run`) turns are not
metered."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from karta.core.internal_api import PendingUsage


@dataclass(frozen=True)
class Billing:
    """Who pays for a turn's model calls."""

    organization_id: int
    api_key_id: int | None
    project_id: int | None
    embed_key_id: int | None = None  # an anonymous end user's embed key (its spend cap)


class Metering(Protocol):
    async def check(
        self, billing: Billing, pending: Callable[[], Awaitable[list[PendingUsage]]]
    ) -> None:
        """Raise `BudgetExhausted` when the payer may not spend more, counting what `pending`
        returns (usage still in the outbox) as spent; it is not called when the answer is
        known without it (no cap applies to the payer)."""
        ...

    def recorded(self) -> None:
        """A usage row was committed to the outbox: ship it soon."""
        ...
