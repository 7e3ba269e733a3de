"""Where an organization's model calls go and with whose key (BYOK), as the control plane says:
one answer per (organization, project), remembered for at most `KARTA_BYOK_CACHE_TTL` seconds
(60 at most) and dropped at once by the control plane's push after a key or a setting changes.
An outage is never papered over with a stale answer (a revoked key must not outlive its
revocation) and never with the platform's key: the model call fails instead."""

from __future__ import annotations

from karta.core import internal_api as api
from karta.core.clock import SYSTEM, Clock
from karta.dataplane.control.cache import CachedLookup
from karta.dataplane.control.client import ControlPlaneClient

MAX_TTL = 60.0
NOTHING = api.ModelAccess()  # no key of the org's own, no settings: the platform serves


class ModelAccessSource:
    def __init__(
        self,
        control: ControlPlaneClient | None,
        *,
        ttl: float = MAX_TTL,
        max_entries: int = 1024,
        clock: Clock = SYSTEM,
    ) -> None:
        self.control = control
        ttl = min(ttl, MAX_TTL)
        self.cache: CachedLookup[tuple[int, int | None], api.ModelAccess] = CachedLookup(
            ttl=ttl, stale=ttl, max_entries=max_entries, clock=clock
        )

    async def get(self, organization_id: int | None, project_id: int | None) -> api.ModelAccess:
        control = self.control
        if control is None or organization_id is None:
            return NOTHING  # open mode, `karta run`: only the platform's key exists
        return await self.cache.get(
            (organization_id, project_id),
            organization_id,
            lambda: control.model_access(organization_id, project_id),
        )

    def evict(self, organization_id: int) -> int:
        return self.cache.evict(organization_id)
