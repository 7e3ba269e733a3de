"""Who is calling the control plane, in which organization, with which permissions, and from
where (for the audit log)."""

from __future__ import annotations

from dataclasses import dataclass

from karta.controlplane.permissions import Permission


@dataclass(frozen=True)
class RequestContext:
    request_id: str | None
    ip: str | None


@dataclass(frozen=True)
class Actor:
    kind: str  # "user" | "api_key"
    organization_id: int | None  # None: a user acting outside any organization
    permissions: frozenset[Permission]
    context: RequestContext
    user_id: int | None = None
    api_key_id: int | None = None
    role: str | None = None  # a user's role in the organization

    @property
    def actor_id(self) -> str:
        return f"user:{self.user_id}" if self.kind == "user" else f"key:{self.api_key_id}"

    def may(self, permission: Permission) -> bool:
        return permission in self.permissions
