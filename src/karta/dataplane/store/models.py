"""The data plane's tables: session handles and their participants, harness bindings, turns,
approvals, the per-session event log, the usage outbox and the gateway's records. No
conversation history (the harness owns that) and no identity
(the control plane owns that: `organization_id` and `project_id` are its ids)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from karta.core.clock import utcnow
from karta.core.dbtypes import UTCDateTime as DateTime


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}


class SessionRow(Base):
    __tablename__ = "sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    organization_id: Mapped[int | None] = mapped_column(Integer, index=True)
    project_id: Mapped[int | None] = mapped_column(Integer)
    # The release the session is pinned to for life: a published release (its version and
    # sha256), or none of them for the served folder's working copy.
    project_slug: Mapped[str | None] = mapped_column(String(64))
    release_version: Mapped[int | None] = mapped_column(Integer)
    release_digest: Mapped[str | None] = mapped_column(String(64))
    app_name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="active")
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    current_agent: Mapped[str | None] = mapped_column(String(200))
    permission_mode: Mapped[str | None] = mapped_column(String(32))
    turn_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(), default=utcnow)


class ParticipantRow(Base):
    """A human or AI in a session. One with neither `gateway_url` nor `linked_session_id`
    lives in this session (it reads the session's stream); otherwise it lives in that session,
    on that gateway's instance (none: this one). `project`: an AI participant that is the agent
    of a Karta project, reached by a turn of that project's session."""

    __tablename__ = "session_participants"

    session_id: Mapped[str] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True
    )
    participant_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    type: Mapped[str] = mapped_column(String(16))  # human | ai
    display_name: Mapped[str] = mapped_column(String(200))
    gateway_url: Mapped[str | None] = mapped_column(String(500))
    linked_session_id: Mapped[str | None] = mapped_column(String(64))
    project: Mapped[str | None] = mapped_column(String(64))
    joined_at: Mapped[datetime] = mapped_column(DateTime(), default=utcnow)
    left_at: Mapped[datetime | None] = mapped_column(DateTime())


class HarnessBinding(Base):
    """Which harness conversation a Karta session continues (Claude Code's session id)."""

    __tablename__ = "harness_bindings"

    session_id: Mapped[str] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True
    )
    harness: Mapped[str] = mapped_column(String(32))
    harness_session_id: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(), default=utcnow)


class TurnRow(Base):
    __tablename__ = "turns"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    session_id: Mapped[str] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    agent: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), index=True)  # a `lifecycle.TurnState`
    first_seq: Mapped[int] = mapped_column(Integer)
    replica_id: Mapped[str | None] = mapped_column(String(128))  # the replica that ran it
    usage: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    started_at: Mapped[datetime] = mapped_column(DateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime())


class ApprovalRow(Base):
    __tablename__ = "approvals"

    request_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    session_id: Mapped[str] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    turn_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    tool: Mapped[str] = mapped_column(String(200))
    target: Mapped[str | None] = mapped_column(Text)
    tool_input: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    message: Mapped[str] = mapped_column(Text)
    # a `lifecycle.ApprovalState`
    status: Mapped[str] = mapped_column(String(24), default="pending")
    created_at: Mapped[datetime] = mapped_column(DateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime())
    decided_at: Mapped[datetime | None] = mapped_column(DateTime())


class EventRow(Base):
    __tablename__ = "session_events"

    session_id: Mapped[str] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    type: Mapped[str] = mapped_column(String(32))
    turn_id: Mapped[str | None] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(), default=utcnow)

    __table_args__ = (Index("ix_session_events_turn", "turn_id"),)


class UsageOutbox(Base):
    """A model call's usage (as the model proxy read it from the provider's answer), waiting to
    be shipped to the control plane; deleted only once the control plane accepted it."""

    __tablename__ = "usage_outbox"

    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    organization_id: Mapped[int] = mapped_column(Integer, index=True)
    api_key_id: Mapped[int | None] = mapped_column(Integer)
    project_id: Mapped[int | None] = mapped_column(Integer)
    session_id: Mapped[str] = mapped_column(String(64))
    turn_id: Mapped[str] = mapped_column(String(64))
    embed_key_id: Mapped[int | None] = mapped_column(Integer)
    model: Mapped[str | None] = mapped_column(String(128))
    input_tokens: Mapped[int] = mapped_column(BigInteger)
    output_tokens: Mapped[int] = mapped_column(BigInteger)
    cache_read_tokens: Mapped[int] = mapped_column(BigInteger)
    cache_write_tokens: Mapped[int] = mapped_column(BigInteger)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(), index=True)
    provider: Mapped[str | None] = mapped_column(String(16))  # who served the call
    key_owner: Mapped[str] = mapped_column(String(16), server_default="platform")  # whose key


class AuditOutbox(Base):
    """Something the audit log must hear about (an approval decided), waiting to be shipped to
    the control plane. Written in the same transaction as the decision itself."""

    __tablename__ = "audit_outbox"

    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    organization_id: Mapped[int] = mapped_column(Integer)
    actor_type: Mapped[str] = mapped_column(String(16))
    api_key_id: Mapped[int | None] = mapped_column(Integer)
    subject: Mapped[str | None] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    resource_type: Mapped[str] = mapped_column(String(32))
    resource_id: Mapped[str] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(), index=True)


class AdapterResponse(Base):
    """An OpenAI Responses id and the session it ran on: `previous_response_id` continues it."""

    __tablename__ = "adapter_responses"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    session_id: Mapped[str] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    turn_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(), default=utcnow)


class GatewayEventRow(Base):
    """A gateway event id seen before, and the answer it got: a replay gets the same answer
    and does nothing. `result` is null while the first attempt is still being handled."""

    __tablename__ = "gateway_events"

    scope: Mapped[str] = mapped_column(String(64), primary_key=True)  # whose ids these are
    event_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(), default=utcnow)


class GatewayOutbox(Base):
    """A delivery waiting to be handed over: to a remote gateway (`gateway_url`) or to a
    session of this instance (none). Deleted once handed over or given up."""

    __tablename__ = "gateway_outbox"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    organization_id: Mapped[int | None] = mapped_column(Integer)
    origin_session_id: Mapped[str] = mapped_column(String(64))
    gateway_url: Mapped[str | None] = mapped_column(String(500))
    delivery: Mapped[dict[str, Any]] = mapped_column(JSON)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(), index=True)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(), default=utcnow)


class GatewayReply(Base):
    """A turn the gateway started: when it ends, its answer goes back to the participants
    who live elsewhere."""

    __tablename__ = "gateway_replies"

    turn_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    session_id: Mapped[str] = mapped_column(String(64))
    organization_id: Mapped[int | None] = mapped_column(Integer)
    in_reply_to: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(), default=utcnow)


class GatewayTrust(Base):
    """`organization_id` accepts gateway events with `peer_organization_id`: an event crosses
    between two organizations only when each has a row for the other."""

    __tablename__ = "gateway_trust"

    organization_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    peer_organization_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(), default=utcnow)
