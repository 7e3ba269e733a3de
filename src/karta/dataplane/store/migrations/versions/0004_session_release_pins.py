"""sessions are pinned to the release they started on

A session records its project's slug and the release it runs for life: the version and sha256
digest of a published release, or neither for the served folder's working copy.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("project_slug", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("release_version", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("release_digest", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_column("release_digest")
        batch_op.drop_column("release_version")
        batch_op.drop_column("project_slug")
