"""provider keys (BYOK) and model settings; sealed values record the master key that sealed them;
usage records who served each call and whose key paid, and what of its cost the cap counts

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

import karta.core.dbtypes

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "provider_keys",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("organization_id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=True),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("last4", sa.String(length=4), nullable=False),
        sa.Column("region", sa.String(length=32), nullable=True),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=True),
        sa.Column("slot", sa.String(length=32), nullable=True),
        sa.Column("created_by", sa.String(length=64), nullable=True),
        sa.Column("created_at", karta.core.dbtypes.UTCDateTime(), nullable=False),
        sa.Column("revoked_at", karta.core.dbtypes.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"]),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("organization_id", "slot"),
    )
    with op.batch_alter_table("provider_keys", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_provider_keys_organization_id"), ["organization_id"], unique=False
        )
    op.create_table(
        "model_settings",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("organization_id", sa.Integer(), nullable=False),
        sa.Column("scope", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=True),
        sa.Column("model", sa.String(length=128), nullable=True),
        sa.Column("endpoint_url", sa.String(length=2048), nullable=True),
        sa.Column("updated_at", karta.core.dbtypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("organization_id", "scope"),
    )
    with op.batch_alter_table("model_settings", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_model_settings_organization_id"), ["organization_id"], unique=False
        )
    with op.batch_alter_table("project_env_vars", schema=None) as batch_op:
        batch_op.add_column(sa.Column("key_id", sa.String(length=32), nullable=True))
    with op.batch_alter_table("embed_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("identity_key_id", sa.String(length=32), nullable=True))
    with op.batch_alter_table("usage_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("provider", sa.String(length=16), nullable=True))
        batch_op.add_column(
            sa.Column("key_owner", sa.String(length=16), nullable=False, server_default="platform")
        )
    money = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    with op.batch_alter_table("usage_daily", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cap_cost_micros", money, nullable=False, server_default="0"))
    op.execute("UPDATE usage_daily SET cap_cost_micros = cost_micros")


def downgrade() -> None:
    with op.batch_alter_table("usage_daily", schema=None) as batch_op:
        batch_op.drop_column("cap_cost_micros")
    with op.batch_alter_table("usage_events", schema=None) as batch_op:
        batch_op.drop_column("key_owner")
        batch_op.drop_column("provider")
    with op.batch_alter_table("embed_keys", schema=None) as batch_op:
        batch_op.drop_column("identity_key_id")
    with op.batch_alter_table("project_env_vars", schema=None) as batch_op:
        batch_op.drop_column("key_id")
    with op.batch_alter_table("model_settings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_model_settings_organization_id"))
    op.drop_table("model_settings")
    with op.batch_alter_table("provider_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_provider_keys_organization_id"))
    op.drop_table("provider_keys")
