"""approvals decided wait in audit_outbox until the control plane's audit log has them

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

import karta.core.dbtypes

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_outbox",
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("organization_id", sa.Integer(), nullable=False),
        sa.Column("actor_type", sa.String(length=16), nullable=False),
        sa.Column("api_key_id", sa.Integer(), nullable=True),
        sa.Column("subject", sa.String(length=200), nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("resource_type", sa.String(length=32), nullable=False),
        sa.Column("resource_id", sa.String(length=64), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("occurred_at", karta.core.dbtypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("event_id"),
    )
    with op.batch_alter_table("audit_outbox", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_audit_outbox_occurred_at"), ["occurred_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("audit_outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_outbox_occurred_at"))
    op.drop_table("audit_outbox")
