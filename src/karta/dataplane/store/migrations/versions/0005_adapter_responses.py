"""OpenAI Responses ids remember their session, so previous_response_id continues it

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

import karta.core.dbtypes

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "adapter_responses",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("session_id", sa.String(length=64), nullable=False),
        sa.Column("turn_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", karta.core.dbtypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["session_id"], ["sessions.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("adapter_responses", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_adapter_responses_session_id"), ["session_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("adapter_responses", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_adapter_responses_session_id"))
    op.drop_table("adapter_responses")
