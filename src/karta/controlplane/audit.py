"""Appending to an organization's audit log, in the caller's transaction.

The head row is locked while a link is added, so concurrent mutations in one org chain in a
strict order; the row and the mutation it records commit or roll back together.
"""

from __future__ import annotations

from typing import Any

from karta.controlplane.actor import Actor
from karta.controlplane.models import AuditEvent, AuditHead
from karta.controlplane.repository import OrgRepository
from karta.core import auditchain
from karta.core.clock import utcnow

SYSTEM = "system"


def start_chain(repo: OrgRepository) -> None:
    """A new organization's empty chain; called in the transaction that creates it."""
    repo.add(AuditHead(seq=0, hash=auditchain.GENESIS))


def public(row: AuditEvent) -> dict[str, Any]:
    """The row as the API returns it — exactly the fields the chain hashes, plus the links."""
    return {
        "organization_id": row.organization_id,
        "seq": row.seq,
        "actor_type": row.actor_type,
        "actor_id": row.actor_id,
        "action": row.action,
        "resource_type": row.resource_type,
        "resource_id": row.resource_id,
        "request_id": row.request_id,
        "ip": row.ip,
        "details": row.details,
        "created_at": row.created_at.isoformat(),
        "prev_hash": row.prev_hash,
        "hash": row.hash,
    }


async def record(
    repo: OrgRepository,
    actor: Actor | None,
    action: str,
    resource_type: str,
    resource_id: object = None,
    *,
    client_event_id: str | None = None,
    **details: Any,
) -> AuditEvent:
    """Append one event; without an actor it is the system's (bootstrap). `details` must never
    hold a secret: callers pass names, ids, limits."""
    head = await repo.audit_head(lock=True)
    ctx = actor.context if actor is not None else None
    row = AuditEvent(
        organization_id=repo.organization_id,
        seq=head.seq + 1,
        actor_type=actor.kind if actor is not None else SYSTEM,
        actor_id=actor.actor_id if actor is not None else None,
        action=action,
        resource_type=resource_type,
        resource_id=None if resource_id is None else str(resource_id),
        request_id=ctx.request_id if ctx else None,
        ip=ctx.ip if ctx else None,
        details=details,
        created_at=utcnow(),
        prev_hash=head.hash,
        client_event_id=client_event_id,
    )
    row.hash = auditchain.link_hash(head.hash, public(row))
    repo.add(row)
    head.seq, head.hash = row.seq, row.hash
    return row
