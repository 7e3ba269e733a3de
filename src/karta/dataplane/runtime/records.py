"""The outbox rows the runtime writes for the control plane: a model call's usage and an
approval decision for the audit log."""

from __future__ import annotations

from typing import Any

from karta.core.clock import SYSTEM, Clock
from karta.core.ids import new_id
from karta.dataplane.principal import Principal
from karta.dataplane.runtime.metering import Billing
from karta.dataplane.store.models import ApprovalRow, AuditOutbox, UsageOutbox

MODEL_NAME_WIDTH = 128  # the ledger column's width


def usage_row(
    billing: Billing,
    session_id: str,
    turn_id: str,
    usage: dict[str, Any],
    clock: Clock = SYSTEM,
) -> UsageOutbox:
    """A usage event: one model call's, as the proxy metered it (or a turn's, as a harness the
    proxy does not see reported it)."""
    model = usage.get("model")
    return UsageOutbox(
        event_id=new_id("use"),
        organization_id=billing.organization_id,
        api_key_id=billing.api_key_id,
        project_id=billing.project_id,
        session_id=session_id,
        turn_id=turn_id,
        embed_key_id=billing.embed_key_id,
        model=model[:MODEL_NAME_WIDTH] if isinstance(model, str) else None,
        input_tokens=int(usage.get("input_tokens") or 0),
        output_tokens=int(usage.get("output_tokens") or 0),
        cache_read_tokens=int(usage.get("cache_read_tokens") or 0),
        cache_write_tokens=int(usage.get("cache_write_tokens") or 0),
        occurred_at=clock.now(),
        provider=usage.get("provider"),
        key_owner=usage.get("key_owner") or "platform",
    )


def decision_record(
    principal: Principal, decision: str, approval: ApprovalRow, clock: Clock = SYSTEM
) -> AuditOutbox:
    """The audit log's row for an approval decided by `principal` (who decided what)."""
    assert principal.organization_id is not None
    return AuditOutbox(
        event_id=new_id("aud"),
        organization_id=principal.organization_id,
        actor_type="end_user" if principal.kind == "session" else "api_key",
        api_key_id=principal.api_key_id,
        subject=principal.sub,
        action="approval.decided",
        resource_type="approval",
        resource_id=approval.request_id,
        details={
            "session_id": approval.session_id,
            "turn_id": approval.turn_id,
            "kind": approval.kind,
            "tool": approval.tool,
            "decision": decision,
        },
        occurred_at=clock.now(),
    )
