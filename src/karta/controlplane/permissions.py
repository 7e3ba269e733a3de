"""Who may do what: the role matrix for members and the scope matrix for API keys.

Every management route names one permission; `docs/control-plane.md` prints this table.
"""

from __future__ import annotations

from enum import StrEnum


class Permission(StrEnum):
    ORG_READ = "org.read"
    MEMBERS_READ = "members.read"
    MEMBERS_MANAGE = "members.manage"
    KEYS_READ = "keys.read"
    KEYS_MANAGE = "keys.manage"
    PROJECTS_READ = "projects.read"
    PROJECTS_WRITE = "projects.write"
    SESSION_TOKENS_MINT = "session_tokens.mint"
    EMBED_KEYS_READ = "embed_keys.read"
    EMBED_KEYS_MANAGE = "embed_keys.manage"
    RELEASES_PUBLISH = "releases.publish"
    RELEASES_ACTIVATE = "releases.activate"
    ENV_READ = "env.read"
    ENV_WRITE = "env.write"
    BUDGET_READ = "budget.read"
    BUDGET_MANAGE = "budget.manage"
    USAGE_READ = "usage.read"
    AUDIT_READ = "audit.read"
    PROVIDER_KEYS_READ = "provider_keys.read"
    PROVIDER_KEYS_MANAGE = "provider_keys.manage"


ROLES = ("owner", "admin", "developer", "billing", "viewer")
SCOPES = ("read", "write", "admin")

P = Permission
_READ = {P.ORG_READ, P.MEMBERS_READ, P.PROJECTS_READ, P.BUDGET_READ, P.USAGE_READ}
_ADMIN = set(Permission)
_DEPLOY = {P.PROJECTS_WRITE, P.RELEASES_PUBLISH, P.ENV_READ, P.ENV_WRITE}

ROLE_PERMISSIONS: dict[str, frozenset[Permission]] = {
    "owner": frozenset(_ADMIN),
    "admin": frozenset(_ADMIN),
    "developer": frozenset(
        _READ
        | _DEPLOY
        | {P.KEYS_READ, P.SESSION_TOKENS_MINT, P.EMBED_KEYS_READ, P.PROVIDER_KEYS_READ}
    ),
    # Billing's own surface (plans, invoices) arrives with Stripe; until then it reads.
    "billing": frozenset(_READ),
    "viewer": frozenset(_READ),
}

SCOPE_PERMISSIONS: dict[str, frozenset[Permission]] = {
    "read": frozenset(_READ),
    "write": frozenset(_READ | _DEPLOY | {P.SESSION_TOKENS_MINT, P.EMBED_KEYS_READ}),
    "admin": frozenset(_ADMIN),
}


def for_role(role: str) -> frozenset[Permission]:
    return ROLE_PERMISSIONS[role]


def for_scopes(scopes: list[str]) -> frozenset[Permission]:
    granted: set[Permission] = set()
    for scope in scopes:
        granted |= SCOPE_PERMISSIONS.get(scope, frozenset())
    return frozenset(granted)


def may_assign(actor_role: str | None, role: str) -> bool:
    """Only owners make (or unmake) owners; admins manage every other role."""
    return role != "owner" or actor_role == "owner"
