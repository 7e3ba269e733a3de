"""What the runtime needs from metering: budget set aside before a turn runs, and a nudge once a
finished turn's usage is in the outbox. The data plane implements it against the control plane
(`karta.dataplane.control.usage`); without one (`karta run`) turns are not metered."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from karta.dataplane.principal import Principal


@dataclass(frozen=True)
class Billing:
    """Who pays for a turn, and the reservation its usage settles."""

    organization_id: int
    api_key_id: int | None
    project_id: int | None
    reservation_id: str | None
    embed_key_id: int | None = None  # an anonymous end user's embed key (its spend cap)


class Metering(Protocol):
    async def reserve(self, principal: Principal) -> str | None:
        """Reserve budget for one turn; raise `BudgetExhausted` to refuse it. Returns the
        reservation id the turn's usage event carries."""
        ...

    def recorded(self) -> None:
        """A usage row was committed to the outbox: ship it soon."""
        ...
