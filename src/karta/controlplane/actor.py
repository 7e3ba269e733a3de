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
    kind: str  # "user" | "api_key" | "end_user" (a session token's holder, on the data plane)
    organization_id: int | None  # None: a user acting outside any organization
    permissions: frozenset[Permission]
    context: RequestContext
    user_id: int | None = None
    api_key_id: int | None = None
    role: str | None = None  # a user's role in the organization
    subject: str | None = None  # an end user's id, as their session token names them

    @property
    def actor_id(self) -> str:
        if self.kind == "user":
            return f"user:{self.user_id}"
        if self.kind == "api_key":
            return f"key:{self.api_key_id}"
        return f"{self.kind}:{self.subject or 'anonymous'}"

    def may(self, permission: Permission) -> bool:
        return permission in self.permissions
