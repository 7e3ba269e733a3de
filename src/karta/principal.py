"""Who is calling: the organization every tenant-data query is scoped to."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Principal:
    kind: str  # "api_key" | "open"
    organization_id: int | None
    api_key_id: int | None = None

    @property
    def scoped(self) -> bool:
        """Open-mode callers (`karta serve --open`) see every session; keys see their org's."""
        return self.kind != "open"

    def owns(self, organization_id: int | None) -> bool:
        return not self.scoped or organization_id == self.organization_id


OPEN = Principal(kind="open", organization_id=None)
