"""embed keys: publishable keys for browsers, and usage counted against their anonymous cap

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

import karta.core.dbtypes

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

Money = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "embed_keys",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("organization_id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("allowed_origins", sa.JSON(), nullable=False),
        sa.Column("theme", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("hosted_page", sa.Boolean(), nullable=False),
        sa.Column("allow_anonymous", sa.Boolean(), nullable=False),
        sa.Column("anonymous_cost_limit_cents", Money, nullable=True),
        sa.Column("anonymous_period", sa.String(length=8), nullable=False),
        sa.Column("identity_secret", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", karta.core.dbtypes.UTCDateTime(), nullable=False),
        sa.Column("updated_at", karta.core.dbtypes.UTCDateTime(), nullable=False),
        sa.Column("revoked_at", karta.core.dbtypes.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"]),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
    )
    with op.batch_alter_table("embed_keys", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_embed_keys_organization_id"), ["organization_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_embed_keys_project_id"), ["project_id"], unique=False)
    with op.batch_alter_table("usage_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("embed_key_id", sa.Integer(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_usage_events_embed_key_id"), ["embed_key_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("usage_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_usage_events_embed_key_id"))
        batch_op.drop_column("embed_key_id")
    with op.batch_alter_table("embed_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_embed_keys_project_id"))
        batch_op.drop_index(batch_op.f("ix_embed_keys_organization_id"))
    op.drop_table("embed_keys")
