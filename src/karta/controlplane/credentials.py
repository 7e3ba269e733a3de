"""Resolving presented credentials: API keys (prefix lookup, then argon2id), login tokens, and
publishable embed keys with the browser origins they admit.

These lookups are not tenant queries — they find *which* tenant a credential belongs to — so they
live here rather than in the org-scoped repository.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from karta.controlplane import security
from karta.controlplane.models import (
    ApiKey,
    EmbedKey,
    Invitation,
    Membership,
    Organization,
    Project,
    User,
    UserToken,
)
from karta.controlplane.repository_base import spelled_id, storable
from karta.controlplane.timekeeping import clock_of
from karta.core import api_keys, embed

# `last_used_at` is refreshed at most this often, so a busy key does not write on every call.
LAST_USED_RESOLUTION = timedelta(seconds=60)


async def find_api_key(session: AsyncSession, presented: str) -> ApiKey | None:
    """The live key matching `presented`, or None. The hash is always checked (against a decoy
    when the prefix is unknown) before revocation, so timing says nothing about either. Only
    reads: `note_use` records the use."""
    if not api_keys.looks_like_api_key(presented):
        return None
    candidates = (
        await session.scalars(
            select(ApiKey).where(ApiKey.prefix == presented[: api_keys.LOOKUP_PREFIX_LEN])
        )
    ).all()
    if not candidates:
        security.verify_secret(None, presented)
        return None
    for key in candidates:
        if security.VERIFIED_KEYS.verify(key.key_hash, presented):
            return None if key.revoked_at is not None else key
    return None


async def note_use(db: async_sessionmaker, key: ApiKey) -> None:
    """Set the key's `last_used_at` when it is older than `LAST_USED_RESOLUTION`, in a write
    transaction of its own: the lookup that found the key took no write lock."""
    async with db() as session:
        now = clock_of(session).now()
        if key.last_used_at is not None and now - key.last_used_at < LAST_USED_RESOLUTION:
            return
        async with session.begin():
            await session.execute(
                update(ApiKey).where(ApiKey.id == key.id).values(last_used_at=now)
            )


async def find_user_by_token(session: AsyncSession, presented: str) -> User | None:
    if not presented.startswith(security.USER_TOKEN_PREFIX):
        return None
    token = await session.scalar(
        select(UserToken).where(UserToken.token_hash == security.digest(presented))
    )
    if token is None or token.expires_at <= clock_of(session).now():
        return None
    return await session.get(User, token.user_id)


async def user_by_email(session: AsyncSession, email: str) -> User | None:
    return await session.scalar(select(User).where(User.email == email.strip().lower()))


async def memberships(session: AsyncSession, user_id: int) -> list[tuple[Membership, Organization]]:
    rows = await session.execute(
        select(Membership, Organization)
        .join(Organization, Organization.id == Membership.organization_id)
        .where(Membership.user_id == user_id)
        .order_by(Organization.id)
    )
    return [(m, o) for m, o in rows.tuples()]


async def invitations_for(
    session: AsyncSession, email: str
) -> list[tuple[Invitation, Organization]]:
    """The pending invitations addressed to `email`, in every organization."""
    rows = await session.execute(
        select(Invitation, Organization)
        .join(Organization, Organization.id == Invitation.organization_id)
        .where(Invitation.email == email, Invitation.status == "pending")
        .order_by(Invitation.id)
    )
    return [(i, o) for i, o in rows.tuples()]


async def invitation_for(
    session: AsyncSession, invitation_id: int, email: str
) -> Invitation | None:
    """One invitation, only if it is addressed to `email`; locked until the transaction ends,
    so it is answered once."""
    if not storable(invitation_id):
        return None
    return await session.scalar(
        select(Invitation)
        .where(Invitation.id == invitation_id, Invitation.email == email)
        .with_for_update()
    )


async def organization_by_slug(session: AsyncSession, slug: str) -> Organization | None:
    return await session.scalar(select(Organization).where(Organization.slug == slug))


async def find_embed_key(session: AsyncSession, presented: str) -> EmbedKey | None:
    """The unrevoked embed key `presented` names (enabled or not: the caller says which), or
    None. Publishable keys are public, so they are looked up as they are."""
    if not embed.looks_like_embed_key(presented):
        return None
    return await session.scalar(
        select(EmbedKey).where(EmbedKey.key == presented, EmbedKey.revoked_at.is_(None))
    )


async def embed_origins(session: AsyncSession, ref: str) -> tuple[set[str], bool]:
    """For CORS on `/v1/projects/{ref}/…`: the origins the live embed keys of every project
    `ref` names allow, and whether one of them serves the hosted page. A browser's preflight
    carries no credential, so it cannot say which organization's project it means; the
    answer admits an origin, never a caller (the bearer token does that)."""
    match = Project.slug == ref
    if (project_id := spelled_id(ref)) is not None:
        match = match | (Project.id == project_id)
    rows = await session.execute(
        select(EmbedKey.allowed_origins, EmbedKey.hosted_page)
        .join(Project, Project.id == EmbedKey.project_id)
        .where(match, EmbedKey.enabled.is_(True), EmbedKey.revoked_at.is_(None))
    )
    origins: set[str] = set()
    hosted = False
    for allowed, hosted_page in rows.tuples():
        origins.update(allowed or [])
        hosted = hosted or bool(hosted_page)
    return origins, hosted
