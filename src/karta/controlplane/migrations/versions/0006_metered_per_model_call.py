"""metered per model call: budgets are checked per call, so turn reservations go; the daily
roll-up counts model calls

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

import karta.core.dbtypes

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

MONEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("reservations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_reservations_organization_id"))
        batch_op.drop_index("ix_reservations_open")
    op.drop_table("reservations")
    with op.batch_alter_table("usage_daily", schema=None) as batch_op:
        batch_op.alter_column("turns", new_column_name="model_calls")


def downgrade() -> None:
    with op.batch_alter_table("usage_daily", schema=None) as batch_op:
        batch_op.alter_column("model_calls", new_column_name="turns")
    op.create_table(
        "reservations",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("organization_id", sa.Integer(), nullable=False),
        sa.Column("api_key_id", sa.Integer(), nullable=True),
        sa.Column("tokens", MONEY, nullable=False),
        sa.Column("cost_micros", MONEY, nullable=False),
        sa.Column("created_at", karta.core.dbtypes.UTCDateTime(), nullable=False),
        sa.Column("expires_at", karta.core.dbtypes.UTCDateTime(), nullable=False),
        sa.Column("settled_at", karta.core.dbtypes.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("reservations", schema=None) as batch_op:
        batch_op.create_index("ix_reservations_open", ["organization_id", "settled_at"])
        batch_op.create_index(batch_op.f("ix_reservations_organization_id"), ["organization_id"])
