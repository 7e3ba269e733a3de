"""Creating organizations and API keys — shared by signup, the management API and the local
bootstrap of `karta serve`."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from karta.controlplane import audit, credentials, security
from karta.controlplane.actor import Actor
from karta.controlplane.models import ApiKey, Budget, Membership, Organization, Project
from karta.controlplane.repository import OrgRepository
from karta.core import api_keys
from karta.core.clock import utcnow
from karta.core.slugs import slugify

ORG_SLUG_MAX = 48  # room for a "-2" suffix within the column


async def unique_slug(session: AsyncSession, wanted: str) -> str:
    base = slugify(wanted, ORG_SLUG_MAX) or "org"
    slug, n = base, 1
    while await credentials.organization_by_slug(session, slug) is not None:
        n += 1
        slug = f"{base}-{n}"
    return slug


async def create_organization(
    session: AsyncSession, name: str, slug: str, owner_user_id: int | None, actor: Actor | None
) -> OrgRepository:
    """A new organization with its budget row, audit chain and (optionally) its owner."""
    org = Organization(slug=slug, name=name)
    session.add(org)
    await session.flush()
    repo = OrgRepository(session, org.id)
    repo.add(Budget(updated_at=utcnow()))
    audit.start_chain(repo)
    await session.flush()
    await audit.record(repo, actor, "org.created", "organization", org.id, slug=slug, name=name)
    if owner_user_id is not None:
        repo.add(Membership(user_id=owner_user_id, role="owner"))
        await audit.record(repo, actor, "member.added", "member", owner_user_id, role="owner")
    return repo


async def create_key(
    repo: OrgRepository,
    actor: Actor | None,
    name: str,
    scopes: list[str],
    *,
    monthly_token_limit: int | None = None,
    monthly_cost_limit_cents: int | None = None,
) -> tuple[ApiKey, str]:
    """A new key and its secret (shown once; only the hash is stored)."""
    secret = api_keys.new_api_key()
    key = ApiKey(
        name=name,
        prefix=secret[: api_keys.LOOKUP_PREFIX_LEN],
        last4=secret[-4:],
        key_hash=security.hash_secret(secret),
        scopes=sorted(set(scopes)),
        monthly_token_limit=monthly_token_limit,
        monthly_cost_limit_cents=monthly_cost_limit_cents,
        created_by_user_id=actor.user_id if actor is not None else None,
        created_at=utcnow(),
    )
    repo.add(key)
    await repo.session.flush()
    await audit.record(
        repo,
        actor,
        "key.created",
        "api_key",
        key.id,
        name=name,
        prefix=key.prefix,
        scopes=key.scopes,
    )
    return key, secret


def public_key(key: ApiKey) -> dict[str, object]:
    return {
        "id": key.id,
        "object": "api_key",
        "name": key.name,
        "prefix": key.prefix,
        "last4": key.last4,
        "scopes": key.scopes,
        "monthly_token_limit": key.monthly_token_limit,
        "monthly_cost_limit_cents": key.monthly_cost_limit_cents,
        "created_at": key.created_at.isoformat(),
        "last_used_at": key.last_used_at.isoformat() if key.last_used_at else None,
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
    }


def public_org(org: Organization) -> dict[str, object]:
    return {
        "id": org.id,
        "object": "organization",
        "slug": org.slug,
        "name": org.name,
        "created_at": org.created_at.isoformat(),
    }


async def create_project(
    repo: OrgRepository, actor: Actor | None, slug: str, name: str | None = None
) -> Project:
    project = Project(slug=slug, name=name or slug, created_at=utcnow())
    repo.add(project)
    await repo.session.flush()
    await audit.record(repo, actor, "project.created", "project", project.id, slug=slug)
    return project
