"""participants get a table of their own (id, type, display name, joined and left times, where
they live), and the gateway its idempotency record, outbox, pending replies and trust between
organizations

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

from karta.core.dbtypes import UTCDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

sessions = sa.table(
    "sessions",
    sa.column("id", sa.String),
    sa.column("participants", sa.JSON),
    sa.column("created_at", UTCDateTime),
)


def upgrade() -> None:
    participants = op.create_table(
        "session_participants",
        sa.Column(
            "session_id",
            sa.String(64),
            sa.ForeignKey("sessions.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("participant_id", sa.String(200), primary_key=True),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("gateway_url", sa.String(500)),
        sa.Column("linked_session_id", sa.String(64)),
        sa.Column("project", sa.String(64)),
        sa.Column("joined_at", UTCDateTime(), nullable=False),
        sa.Column("left_at", UTCDateTime()),
    )
    # The names a session's JSON column listed become rows (joined when the session began).
    rows = []
    for session_id, listed, created in op.get_bind().execute(
        sa.select(sessions.c.id, sessions.c.participants, sessions.c.created_at)
    ):
        for item in listed or []:
            if isinstance(item, dict) and item.get("name"):
                rows.append(
                    {
                        "session_id": session_id,
                        "participant_id": str(item["name"])[:200],
                        "type": "human" if item.get("type") == "human" else "ai",
                        "display_name": str(item["name"])[:200],
                        "joined_at": created,
                    }
                )
    if rows:
        op.bulk_insert(participants, rows)
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("participants")

    op.create_table(
        "gateway_events",
        sa.Column("scope", sa.String(64), primary_key=True),
        sa.Column("event_id", sa.String(128), primary_key=True),
        sa.Column("result", sa.JSON()),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "gateway_outbox",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("organization_id", sa.Integer()),
        sa.Column("origin_session_id", sa.String(64), nullable=False),
        sa.Column("gateway_url", sa.String(500)),
        sa.Column("delivery", sa.JSON(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=False, index=True),
        sa.Column("last_error", sa.Text()),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "gateway_replies",
        sa.Column("turn_id", sa.String(64), primary_key=True),
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("organization_id", sa.Integer()),
        sa.Column("in_reply_to", sa.String(128), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "gateway_trust",
        sa.Column("organization_id", sa.Integer(), primary_key=True),
        sa.Column("peer_organization_id", sa.Integer(), primary_key=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    for table in ("gateway_trust", "gateway_replies", "gateway_outbox", "gateway_events"):
        op.drop_table(table)
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("participants", sa.JSON(), nullable=False, server_default="[]"))
    op.drop_table("session_participants")
