"""Master-key rotation: re-encrypt every secret an older master key sealed (project env vars,
provider keys, embed keys' identity secrets) with the newest one (`karta rotate-key`). Put the
new key first in `KARTA_SECRETS_KEYS`, keep the old ones after it, restart, run this; once it
reports nothing left to re-seal, the old keys may be removed."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from karta.controlplane.app import MIGRATIONS
from karta.controlplane.embed_keys import identity_context
from karta.controlplane.models import Organization
from karta.controlplane.repository import OrgRepository
from karta.controlplane.secretbox import SecretBox, env_context, provider_key_context
from karta.controlplane.settings import ControlSettings
from karta.core import db as store

log = logging.getLogger(__name__)


@dataclass
class Resealed:
    env_vars: int = 0
    provider_keys: int = 0
    embed_keys: int = 0  # their identity secrets


async def reseal_all(db: async_sessionmaker[AsyncSession], box: SecretBox) -> Resealed:
    """Re-encrypt every secret an older master key sealed with the newest one, one organization
    per transaction; afterwards the older keys may be retired."""
    done = Resealed()
    async with db() as session:
        org_ids = list((await session.scalars(select(Organization.id))).all())
    for org_id in org_ids:
        async with db() as session, session.begin():
            repo = OrgRepository(session, org_id)
            for project in await repo.projects():
                for var in await repo.env_vars(project.id):
                    context = env_context(org_id, project.id, var.name)
                    sealed = box.reseal(var.ciphertext, context, var.key_id)
                    if sealed is not None:
                        var.ciphertext, var.key_id = sealed.blob, sealed.key_id
                        done.env_vars += 1
                for key in await repo.embed_keys(project.id):
                    if key.revoked_at is not None:
                        continue
                    context = identity_context(key)
                    sealed = box.reseal(key.identity_secret, context, key.identity_key_id)
                    if sealed is not None:
                        key.identity_secret, key.identity_key_id = sealed.blob, sealed.key_id
                        done.embed_keys += 1
            for row in await repo.provider_keys(active_only=True):
                context = provider_key_context(org_id, row.project_id, row.provider)
                sealed = box.reseal(row.ciphertext, context, row.key_id)
                if sealed is not None:
                    row.ciphertext, row.key_id = sealed.blob, sealed.key_id
                    done.provider_keys += 1
    log.info(
        "re-sealed %s env vars, %s provider keys and %s embed identity secrets",
        done.env_vars,
        done.provider_keys,
        done.embed_keys,
    )
    return done


async def rotate(settings: ControlSettings) -> Resealed:
    """Open the control plane's database (as configured) and re-seal everything in it."""
    box = SecretBox.load(settings.secrets_key, settings.home, settings.secrets_keys)
    engine = store.create_engine(settings.db_url, serialized_writes=True)
    try:
        await store.migrate(engine, MIGRATIONS)
        return await reseal_all(store.sessionmaker(engine), box)
    finally:
        await engine.dispose()
