"""What every part of the org-scoped repository (`karta.controlplane.repository`) shares: the
session and the organization it was opened for, and the bounds of an id."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession

from karta.controlplane import timekeeping
from karta.controlplane.models import MAX_INTEGER, Organization
from karta.core.clock import Clock
from karta.core.errors import NotFound

Row = TypeVar("Row")


def storable(n: int) -> bool:
    """Whether `n` fits an id column. An id that does not names no row, so it is never sent to
    the database, whose driver would fail on it instead of finding nothing."""
    return 1 <= n <= MAX_INTEGER


def spelled_id(text: str) -> int | None:
    """The storable id `text` spells in ASCII digits (`"12"`, not `"١٢"` nor `"²"`), or None."""
    if text.isascii() and text.isdigit() and len(text) <= len(str(MAX_INTEGER)):
        n = int(text)
        return n if storable(n) else None
    return None


class OrgScoped:
    """Queries of one organization's rows: every one filters by `organization_id`."""

    def __init__(self, session: AsyncSession, organization_id: int) -> None:
        self.session = session
        self.organization_id = organization_id

    @property
    def clock(self) -> Clock:
        return timekeeping.clock_of(self.session)

    def add(self, row: Any) -> None:
        """Stage a new tenant row; it always lands in this organization."""
        row.organization_id = self.organization_id
        self.session.add(row)

    async def organization(self) -> Organization:
        org = await self.session.get(Organization, self.organization_id)
        if org is None:
            raise NotFound("organization not found")
        return org

    async def _one(
        self,
        query: Select[Row],
        missing: NotFound,
        *,
        row_id: int | None = None,
        lock: bool = False,
    ) -> Row:
        """The row `query` finds, else `missing` raised. `row_id` is the id it looks for: one no
        column can hold is never sent (see `storable`). With `lock`, the row is held until the
        transaction ends."""
        if row_id is not None and not storable(row_id):
            raise missing
        found = await self.session.scalar(query.with_for_update() if lock else query)
        if found is None:
            raise missing
        return found
