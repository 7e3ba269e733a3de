"""usage per model call: the outbox holds one row per call the model proxy metered, read by
budget checks per organization; turns no longer carry a reservation to settle

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("usage_outbox", schema=None) as batch_op:
        batch_op.drop_column("reservation_id")
        batch_op.create_index("ix_usage_outbox_organization_id", ["organization_id"])
    with op.batch_alter_table("turns", schema=None) as batch_op:
        batch_op.drop_column("billing")


def downgrade() -> None:
    with op.batch_alter_table("turns", schema=None) as batch_op:
        batch_op.add_column(sa.Column("billing", sa.JSON(), nullable=True))
    with op.batch_alter_table("usage_outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_usage_outbox_organization_id")
        batch_op.add_column(sa.Column("reservation_id", sa.String(length=64), nullable=True))
