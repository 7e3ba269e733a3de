"""Who is calling: the organization (and, on project routes, the project) every tenant-data
query is scoped to, what the caller may do, and the budget state the control plane reported."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from karta.core.end_users import check_end_user_id
from karta.core.errors import BudgetExhausted, Forbidden, IdentityMismatch, ParticipantForbidden

READ, WRITE, ADMIN = "read", "write", "admin"
# A scope and every scope that includes it.
_SATISFIED_BY = {READ: {READ, WRITE, ADMIN}, WRITE: {WRITE, ADMIN}, ADMIN: {ADMIN}}
# End users holding a session token chat: they read and write their project's sessions.
SESSION_SCOPES = frozenset({READ, WRITE})


END_USER_KEYS = ("user_id", "end_user_id")


def end_user(metadata: dict[str, Any]) -> str | None:
    """The end user a session's metadata names (`user_id`, else `end_user_id`), if any."""
    for key in END_USER_KEYS:
        if metadata.get(key) is not None:
            return str(metadata[key])
    return None


@dataclass(frozen=True)
class Principal:
    kind: str  # "api_key" | "session" | "open" | "gateway" (a turn the gateway started)
    organization_id: int | None
    organization_slug: str | None = None
    scopes: frozenset[str] = field(default_factory=frozenset)
    api_key_id: int | None = None
    api_key_prefix: str | None = None
    budget_ok: bool = True
    budget_reason: str | None = None
    # Set on the project route family: sessions are then confined to this project.
    project_id: int | None = None
    project_slug: str | None = None
    sub: str | None = None  # a session token's end user (verified, or `anon:…`)
    embed_key_id: int | None = None  # an anonymous end user's embed key (its spend cap)

    @property
    def scoped(self) -> bool:
        """Open-mode callers (`karta serve --open`) see every session; others see their org's."""
        return self.kind != "open"

    def owns(
        self, organization_id: int | None, project_id: int | None, metadata: dict[str, Any]
    ) -> bool:
        """Whether a session with these owners is visible to this caller (else it is a 404).
        A session token sees only its own end user's sessions; one minted without `sub` sees
        only sessions that belong to no end user."""
        if not self.scoped:
            return True
        if organization_id is None or organization_id != self.organization_id:
            return False
        if self.project_id is not None and project_id != self.project_id:
            return False
        return self.kind != "session" or end_user(metadata) == self.sub

    def session_scope(self) -> dict[str, Any]:
        """`owns` as filters for listing sessions (`runtime.repository.SessionFilter`)."""
        if not self.scoped:
            return {"organization_id": None}
        scope: dict[str, Any] = {
            "organization_id": self.organization_id,
            "project_id": self.project_id,
        }
        if self.kind == "session":
            scope.update(end_user=self.sub, anonymous_only=self.sub is None)
        return scope

    def require(self, scope: str) -> None:
        if self.scoped and not (self.scopes & _SATISFIED_BY[scope]):
            raise Forbidden(f"this credential lacks the {scope!r} scope", scope=scope)

    def bind_end_user(self, metadata: dict[str, Any]) -> dict[str, Any]:
        """New-session metadata under a session token: its verified `sub` is the end user.
        Metadata naming someone else is refused; metadata naming nobody gets `user_id = sub`."""
        named = {
            check_end_user_id(metadata[k]) for k in END_USER_KEYS if metadata.get(k) is not None
        }
        if self.sub is None:
            if named and self.kind == "session":
                raise IdentityMismatch("an anonymous session token cannot name an end user")
            return metadata
        if named - {self.sub}:
            raise IdentityMismatch("the session metadata names another user than the token")
        return metadata if named else {**metadata, "user_id": self.sub}

    def acts_as(self, participant_id: str | None) -> str | None:
        """The participant this caller speaks as when it names `participant_id`. A session
        token's end user is a participant and acts only as themself (an anonymous token as
        nobody); other callers act as whoever they name, or as nobody."""
        if self.kind != "session":
            return participant_id
        if participant_id is not None and participant_id != self.sub:
            raise ParticipantForbidden(
                "a session token acts only as its own end user"
                + (f" ({self.sub!r})" if self.sub else ", and this one names none"),
                participant=participant_id,
            )
        return self.sub

    def check_budget(self) -> None:
        if not self.budget_ok:
            raise BudgetExhausted(self.budget_reason or "budget_exhausted")


OPEN = Principal(kind="open", organization_id=None)
