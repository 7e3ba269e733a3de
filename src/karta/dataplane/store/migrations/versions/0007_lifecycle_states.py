"""turn and approval states follow the lifecycle: cancelled turns are stored as cancelled, and
approvals are named by their state (approved_once, approved_session, denied)

Revision ID: 0007
Revises: 0006
"""

import json

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

APPROVALS = {
    "approve_once": "approved_once",
    "approve_session": "approved_session",
    "deny": "denied",
}

turns = sa.table("turns", sa.column("id", sa.String), sa.column("status", sa.String))
approvals = sa.table("approvals", sa.column("status", sa.String))
events = sa.table(
    "session_events",
    sa.column("turn_id", sa.String),
    sa.column("type", sa.String),
    sa.column("payload", sa.JSON),
)


def _rename(old_to_new: dict[str, str]) -> None:
    for old, new in old_to_new.items():
        op.execute(approvals.update().where(approvals.c.status == old).values(status=new))


def upgrade() -> None:
    _rename(APPROVALS)
    # A cancelled turn was stored as failed; its `done` event still says what it was.
    bind = op.get_bind()
    done = bind.execute(
        sa.select(events.c.turn_id, events.c.payload).where(events.c.type == "done")
    )
    cancelled = []
    for turn_id, payload in done:
        data = (json.loads(payload) if isinstance(payload, str) else payload or {}).get(
            "data"
        ) or {}
        if data.get("status") == "cancelled":
            cancelled.append(turn_id)
    if cancelled:
        op.execute(turns.update().where(turns.c.id.in_(cancelled)).values(status="cancelled"))


def downgrade() -> None:
    _rename({new: old for old, new in APPROVALS.items()})
    op.execute(turns.update().where(turns.c.status == "cancelled").values(status="failed"))
    op.execute(turns.update().where(turns.c.status == "awaiting_input").values(status="running"))
