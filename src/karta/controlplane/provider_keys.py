"""An organization's own provider keys (BYOK) and model settings: storing, revoking (which
shreds the material), what the builder is shown, and what the data plane is given.

A key's ciphertext is bound to its row by its associated data (`secretbox.provider_key_context`:
organization, project and provider), so one moved to another row fails to open."""

from __future__ import annotations

import json
from typing import Any

from karta.controlplane.deps import Tx
from karta.controlplane.models import ModelSettings, Project, ProviderKey
from karta.controlplane.provider_checks import last4
from karta.controlplane.repository import OrgRepository
from karta.controlplane.repository_providers import slot
from karta.controlplane.secretbox import SecretBox, provider_key_context
from karta.core import internal_api as api
from karta.core.clock import utcnow


def public_key(row: ProviderKey, project: Project | None) -> dict[str, Any]:
    return {
        "id": row.id,
        "object": "provider_key",
        "provider": row.provider,
        "project": project.slug if project is not None else None,
        "label": row.label,
        "last4": row.last4,
        "region": row.region,
        "status": "active" if row.slot is not None else "revoked",
        "created_by": row.created_by,
        "created_at": row.created_at.isoformat(),
        "revoked_at": row.revoked_at.isoformat() if row.revoked_at else None,
    }


def public_settings(row: ModelSettings | None, project: Project | None) -> dict[str, Any]:
    return {
        "object": "model_settings",
        "project": project.slug if project is not None else None,
        "provider": row.provider if row else None,
        "model": row.model if row else None,
        "endpoint_url": row.endpoint_url if row else None,
        "updated_at": row.updated_at.isoformat() if row else None,
    }


def shred(row: ProviderKey) -> None:
    """Revoke: the material is gone from the row (and the slot freed for a new key)."""
    row.ciphertext = b""
    row.key_id = None
    row.slot = None
    row.revoked_at = utcnow()


async def store_key(
    tx: Tx,
    box: SecretBox,
    project: Project | None,
    provider: str,
    label: str,
    material: dict[str, str],
) -> tuple[ProviderKey, int | None]:
    """The new active key of its scope and provider, and the id of the one it replaced (that
    one is revoked and shredded in the same transaction)."""
    project_id = project.id if project is not None else None
    replaced = await tx.repo.active_provider_key(project_id, provider, lock=True)
    if replaced is not None:
        shred(replaced)
        await tx.session.flush()  # the slot is free before the new row takes it
        await tx.audit("provider_key.revoked", "provider_key", replaced.id, reason="replaced")
    context = provider_key_context(tx.repo.organization_id, project_id, provider)
    sealed = box.seal(json.dumps(material, separators=(",", ":")), context)
    row = ProviderKey(
        project_id=project_id,
        provider=provider,
        label=label,
        last4=last4(provider, material),
        region=material.get("region"),
        ciphertext=sealed.blob,
        key_id=sealed.key_id,
        slot=slot(project_id, provider),
        created_by=tx.actor.actor_id,
        created_at=utcnow(),
    )
    tx.repo.add(row)
    await tx.session.flush()
    await tx.audit(
        "provider_key.created",
        "provider_key",
        row.id,
        provider=provider,
        project=project.slug if project is not None else None,
        label=label,
        last4=row.last4,
        replaced=replaced.id if replaced is not None else None,
    )
    return row, replaced.id if replaced is not None else None


def open_key(box: SecretBox, row: ProviderKey) -> dict[str, str]:
    context = provider_key_context(row.organization_id, row.project_id, row.provider)
    material = json.loads(box.open(row.ciphertext, context, row.key_id))
    return {str(k): str(v) for k, v in material.items()}


async def model_access(
    repo: OrgRepository, box: SecretBox, project_id: int | None
) -> api.ModelAccess:
    """What the data plane's proxy needs for this project's model calls (see `ModelAccess`)."""
    settings = None
    if project_id is not None:
        settings = await repo.model_settings(project_id)
    if settings is None:
        settings = await repo.model_settings(None)
    chosen: dict[str, ProviderKey] = {}
    for row in await repo.provider_keys(active_only=True):
        if row.project_id == project_id or (row.project_id is None and row.provider not in chosen):
            chosen[row.provider] = row
    keys = [
        api.ProviderCredential(
            provider=row.provider,  # type: ignore[arg-type]
            owner="project" if row.project_id is not None else "org",
            key_id=row.id,
            material=open_key(box, row),
        )
        for row in chosen.values()
    ]
    return api.ModelAccess(
        provider=settings.provider if settings else None,
        model=settings.model if settings else None,
        endpoint_url=settings.endpoint_url if settings else None,
        keys=keys,
    )
