"""The repository's providers part: the organization's own provider keys (BYOK) and its model
settings, for the organization or one of its projects."""

from __future__ import annotations

from sqlalchemy import select

from karta.controlplane.models import ModelSettings, ProviderKey
from karta.controlplane.repository_base import OrgScoped
from karta.core.errors import NotFound


class ProviderKeyNotFound(NotFound):
    code = "provider_key_not_found"


def slot(project_id: int | None, provider: str) -> str:
    """The one place an active key of this scope and provider may occupy."""
    return f"{project_id or 0}:{provider}"


class ProviderQueries(OrgScoped):
    # --- provider keys -------------------------------------------------------------------------

    async def provider_keys(self, *, active_only: bool = False) -> list[ProviderKey]:
        query = select(ProviderKey).where(ProviderKey.organization_id == self.organization_id)
        if active_only:
            query = query.where(ProviderKey.slot.is_not(None))
        rows = await self.session.scalars(query.order_by(ProviderKey.id))
        return list(rows.all())

    async def provider_key(self, key_id: int, *, lock: bool = False) -> ProviderKey:
        query = select(ProviderKey).where(
            ProviderKey.organization_id == self.organization_id, ProviderKey.id == key_id
        )
        missing = ProviderKeyNotFound(f"provider key {key_id} not found")
        return await self._one(query, missing, row_id=key_id, lock=lock)

    async def active_provider_key(
        self, project_id: int | None, provider: str, *, lock: bool = False
    ) -> ProviderKey | None:
        query = select(ProviderKey).where(
            ProviderKey.organization_id == self.organization_id,
            ProviderKey.slot == slot(project_id, provider),
        )
        return await self.session.scalar(query.with_for_update() if lock else query)

    # --- model settings ------------------------------------------------------------------------

    async def model_settings(self, project_id: int | None) -> ModelSettings | None:
        return await self.session.scalar(
            select(ModelSettings).where(
                ModelSettings.organization_id == self.organization_id,
                ModelSettings.scope == (project_id or 0),
            )
        )

    async def all_model_settings(self) -> list[ModelSettings]:
        rows = await self.session.scalars(
            select(ModelSettings)
            .where(ModelSettings.organization_id == self.organization_id)
            .order_by(ModelSettings.scope)
        )
        return list(rows.all())
