"""usage outbox rows name the embed key an anonymous end user's turn counts against

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("usage_outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("embed_key_id", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("usage_outbox", schema=None) as batch_op:
        batch_op.drop_column("embed_key_id")
