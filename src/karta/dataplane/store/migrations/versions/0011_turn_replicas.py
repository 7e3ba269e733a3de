"""turns name the replica that ran them (so whoever adopts a dead owner's turn knows it crashed
rather than restarted), and live turns are found by status

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("turns", schema=None) as batch_op:
        batch_op.add_column(sa.Column("replica_id", sa.String(length=128), nullable=True))
        batch_op.create_index("ix_turns_status", ["status"])


def downgrade() -> None:
    with op.batch_alter_table("turns", schema=None) as batch_op:
        batch_op.drop_index("ix_turns_status")
        batch_op.drop_column("replica_id")
