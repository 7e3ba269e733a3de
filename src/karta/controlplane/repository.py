"""The org-scoped repository: the only way routes and services read or write tenant data.

Every query filters by the organization the repository was opened for, so another org's row is
indistinguishable from a missing one (404). `tests/unit/test_controlplane_scoping.py` checks that
no other control-plane module queries tenant tables directly.

`OrgRepository` is one class made of parts along the data's seams: identity (members, invitations,
keys: `repository_identity`), releases (projects, releases, env vars: `repository_releases`),
money (budget, usage: `repository_money`) and providers (BYOK keys and model settings:
`repository_providers`), on what they share
(`repository_base`); the audit log's queries are here.
"""

from __future__ import annotations

from sqlalchemy import select

from karta.controlplane.models import AuditEvent, AuditHead
from karta.controlplane.repository_identity import IdentityQueries
from karta.controlplane.repository_money import MoneyQueries
from karta.controlplane.repository_providers import ProviderQueries
from karta.controlplane.repository_releases import ReleaseQueries
from karta.core.errors import NotFound


class OrgRepository(IdentityQueries, ReleaseQueries, MoneyQueries, ProviderQueries):
    """One organization's data, opened with a session and the organization's id."""

    # --- audit ---------------------------------------------------------------------------------

    async def audit_head(self, *, lock: bool = False) -> AuditHead:
        query = select(AuditHead).where(AuditHead.organization_id == self.organization_id)
        return await self._one(query, NotFound("audit head not found"), lock=lock)

    async def reported_audit_event(self, client_event_id: str) -> AuditEvent | None:
        return await self.session.scalar(
            select(AuditEvent).where(
                AuditEvent.organization_id == self.organization_id,
                AuditEvent.client_event_id == client_event_id,
            )
        )

    async def audit_events(self, after: int, limit: int) -> list[AuditEvent]:
        rows = await self.session.scalars(
            select(AuditEvent)
            .where(AuditEvent.organization_id == self.organization_id, AuditEvent.seq > after)
            .order_by(AuditEvent.seq)
            .limit(limit)
        )
        return list(rows.all())
