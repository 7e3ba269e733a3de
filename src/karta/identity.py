"""Local identity for the embedded server: one organization and its API keys (`kt_live_…`).

Keys are shown once and stored only as a SHA-256 digest plus an indexed prefix. A key carries
~190 bits of randomness, so a fast digest is not brute-forceable; the control plane, which also
holds human passwords, is where slow hashing belongs.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import async_sessionmaker

from karta.principal import Principal
from karta.store.models import ApiKey, Organization, utcnow

KEY_PREFIX = "kt_live_"
_ALPHABET = string.ascii_letters + string.digits
LOOKUP_PREFIX_LEN = len(KEY_PREFIX) + 6
# `last_used_at` is refreshed at most this often, so a busy key does not write on every call.
LAST_USED_RESOLUTION = timedelta(seconds=60)


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def generate_key() -> str:
    return KEY_PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(32))


async def ensure_local_org(db: async_sessionmaker) -> Organization:
    """The embedded server's single organization, created on first start."""
    async with db() as s, s.begin():
        org = await s.scalar(select(Organization).where(Organization.slug == "local"))
        if org is None:
            org = Organization(slug="local", name="Local")
            s.add(org)
    return org


async def create_api_key(db: async_sessionmaker, organization_id: int, name: str) -> str:
    key = generate_key()
    async with db() as s, s.begin():
        s.add(
            ApiKey(
                organization_id=organization_id,
                name=name,
                prefix=key[:LOOKUP_PREFIX_LEN],
                key_hash=_digest(key),
            )
        )
    return key


async def authenticate(db: async_sessionmaker, key: str) -> Principal | None:
    if not key.startswith(KEY_PREFIX) or len(key) != len(KEY_PREFIX) + 32:
        return None
    digest = _digest(key)
    async with db() as s:
        rows = (
            await s.scalars(select(ApiKey).where(ApiKey.prefix == key[:LOOKUP_PREFIX_LEN]))
        ).all()
    for row in rows:
        if hmac.compare_digest(row.key_hash, digest) and row.revoked_at is None:
            if row.last_used_at is None or utcnow() - row.last_used_at >= LAST_USED_RESOLUTION:
                async with db() as s, s.begin():
                    await s.execute(
                        update(ApiKey).where(ApiKey.id == row.id).values(last_used_at=utcnow())
                    )
            return Principal(kind="api_key", organization_id=row.organization_id, api_key_id=row.id)
    return None
