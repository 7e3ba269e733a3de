"""usage per model call records who served it (the provider) and whose key paid (the platform's,
the organization's or a project's own)

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("usage_outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("provider", sa.String(length=16), nullable=True))
        batch_op.add_column(
            sa.Column("key_owner", sa.String(length=16), nullable=False, server_default="platform")
        )


def downgrade() -> None:
    with op.batch_alter_table("usage_outbox", schema=None) as batch_op:
        batch_op.drop_column("key_owner")
        batch_op.drop_column("provider")
