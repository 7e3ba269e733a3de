"""The control plane's tables: identity, credentials, projects, money and audit.

Every tenant table carries `organization_id`; `karta.controlplane.repository` is the only way
routes read them, and it always filters by the caller's organization.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    event,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from karta.core.clock import utcnow
from karta.core.dbtypes import UTCDateTime as DateTime
from karta.core.internal_api import MAX_ID

Money = BigInteger().with_variant(Integer, "sqlite")
# The largest value an `Integer` column (ids, versions, audit seq) holds on every backend.
MAX_INTEGER = MAX_ID


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(), default=utcnow)


class UserToken(Base):
    """A login token (`ktu_…`), stored as a SHA-256 digest: it is long and random."""

    __tablename__ = "user_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime())


class LoginFailure(Base):
    """A failed login, counted to slow password guessing (see `karta.controlplane.throttle`)."""

    __tablename__ = "login_failures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(320), index=True)
    ip: Mapped[str | None] = mapped_column(String(64), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(), index=True)


class Organization(Base):
    __tablename__ = "organizations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(), default=utcnow)


class Membership(Base):
    __tablename__ = "memberships"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(), default=utcnow)

    __table_args__ = (UniqueConstraint("organization_id", "user_id"),)


class Invitation(Base):
    """An offer of a role, addressed to an email: it makes no member until a user logged in with
    that email accepts it, and it says nothing about whether the email has an account."""

    __tablename__ = "invitations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    email: Mapped[str] = mapped_column(String(320), index=True)
    role: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))  # pending | accepted | declined | revoked
    invited_by: Mapped[str | None] = mapped_column(String(64))  # the inviter's actor id
    created_at: Mapped[datetime] = mapped_column(DateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime())
    responded_at: Mapped[datetime | None] = mapped_column(DateTime())


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(32), index=True)
    last4: Mapped[str] = mapped_column(String(4))
    key_hash: Mapped[str] = mapped_column(String(255))
    scopes: Mapped[list[Any]] = mapped_column(JSON)
    monthly_token_limit: Mapped[int | None] = mapped_column(Money)
    monthly_cost_limit_cents: Mapped[int | None] = mapped_column(Money)
    created_by_user_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime())


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    slug: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(), default=utcnow)
    # The release new sessions start on; flipped atomically by activation and rollback.
    active_release_id: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (UniqueConstraint("organization_id", "slug"),)


class EmbedKey(Base):
    """A publishable key (`pk_live_…`) that lets browsers on its allowed origins chat with one
    project. The key itself is public (it ships in HTML) and stored in clear; its identity
    secret, which signs verified end users, is sealed like an env var (`secretbox`)."""

    __tablename__ = "embed_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    key: Mapped[str] = mapped_column(String(64), unique=True)
    allowed_origins: Mapped[list[Any]] = mapped_column(JSON, default=list)
    theme: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # Also serves the project's hosted chat page, from the data plane's own origin.
    hosted_page: Mapped[bool] = mapped_column(Boolean, default=False)
    allow_anonymous: Mapped[bool] = mapped_column(Boolean, default=True)
    anonymous_cost_limit_cents: Mapped[int | None] = mapped_column(Money)
    anonymous_period: Mapped[str] = mapped_column(String(8), default="month")  # day | month
    identity_secret: Mapped[bytes] = mapped_column(LargeBinary)
    identity_key_id: Mapped[str | None] = mapped_column(String(32))  # the master key that sealed it
    created_at: Mapped[datetime] = mapped_column(DateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime())


class Release(Base):
    """An immutable, validated snapshot of a harness app: `vN` of a project, stored
    content-addressed by the sha256 of its archive."""

    __tablename__ = "releases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    digest: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Money)
    status: Mapped[str] = mapped_column(String(16))  # ready | failed
    harness: Mapped[str | None] = mapped_column(String(32))
    app_name: Mapped[str | None] = mapped_column(String(200))
    agents: Mapped[list[Any]] = mapped_column(JSON, default=list)
    build_log: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(), default=utcnow)

    __table_args__ = (UniqueConstraint("project_id", "version"),)


class ProjectEnvVar(Base):
    """A project's environment variable, encrypted at rest (AES-256-GCM, see `secretbox`)."""

    __tablename__ = "project_env_vars"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"))
    name: Mapped[str] = mapped_column(String(128))
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    key_id: Mapped[str | None] = mapped_column(String(32))  # the master key that sealed it
    hint: Mapped[str | None] = mapped_column(String(8))
    updated_at: Mapped[datetime] = mapped_column(DateTime(), default=utcnow)

    __table_args__ = (UniqueConstraint("project_id", "name"),)


class ProviderKey(Base):
    """An organization's own credential for a model provider (BYOK), for the whole organization
    or one project; encrypted at rest like env vars (`secretbox`), the associated data binding
    it to its organization, project and provider. `slot` is `"<project id or 0>:<provider>"`
    while the key is active and NULL once revoked: at most one active key per slot. Revoking
    empties `ciphertext`."""

    __tablename__ = "provider_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id"))
    provider: Mapped[str] = mapped_column(String(16))
    label: Mapped[str] = mapped_column(String(200))
    last4: Mapped[str] = mapped_column(String(4))
    region: Mapped[str | None] = mapped_column(String(32))
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    key_id: Mapped[str | None] = mapped_column(String(32))
    slot: Mapped[str | None] = mapped_column(String(32))
    created_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime())

    __table_args__ = (UniqueConstraint("organization_id", "slot"),)


class ModelSettings(Base):
    """Which provider an organization's (or one project's) model calls go to, the model they
    use, and for Anthropic- or OpenAI-compatible providers the endpoint. `scope` is the project
    id, or 0 for the organization's own settings."""

    __tablename__ = "model_settings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    scope: Mapped[int] = mapped_column(Integer)
    provider: Mapped[str | None] = mapped_column(String(16))
    model: Mapped[str | None] = mapped_column(String(128))
    endpoint_url: Mapped[str | None] = mapped_column(String(2048))
    updated_at: Mapped[datetime] = mapped_column(DateTime(), default=utcnow)

    __table_args__ = (UniqueConstraint("organization_id", "scope"),)


class Budget(Base):
    """The organization's monthly caps; one row per organization, created with it."""

    __tablename__ = "budgets"

    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), primary_key=True)
    monthly_token_limit: Mapped[int | None] = mapped_column(Money)
    monthly_cost_limit_cents: Mapped[int | None] = mapped_column(Money)
    updated_at: Mapped[datetime] = mapped_column(DateTime(), default=utcnow)


class UsageEvent(Base):
    """The ledger: one row per metered model call, priced when it arrived."""

    __tablename__ = "usage_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"))
    client_event_id: Mapped[str] = mapped_column(String(64))
    api_key_id: Mapped[int | None] = mapped_column(Integer)
    project_id: Mapped[int | None] = mapped_column(Integer)
    # Set for an anonymous end user's turn: the embed key whose anonymous spend cap it counts to.
    embed_key_id: Mapped[int | None] = mapped_column(Integer, index=True)
    session_id: Mapped[str | None] = mapped_column(String(64))
    turn_id: Mapped[str | None] = mapped_column(String(64))
    model: Mapped[str | None] = mapped_column(String(128))
    input_tokens: Mapped[int] = mapped_column(Money)
    output_tokens: Mapped[int] = mapped_column(Money)
    cache_read_tokens: Mapped[int] = mapped_column(Money)
    cache_write_tokens: Mapped[int] = mapped_column(Money)
    cost_micros: Mapped[int] = mapped_column(Money)
    occurred_at: Mapped[datetime] = mapped_column(DateTime())
    recorded_at: Mapped[datetime] = mapped_column(DateTime(), default=utcnow)
    provider: Mapped[str | None] = mapped_column(String(16))  # who served the call
    # Whose key paid the provider: the platform's, or the organization's (or a project's) own.
    key_owner: Mapped[str] = mapped_column(String(16), server_default="platform")

    __table_args__ = (UniqueConstraint("organization_id", "client_event_id"),)


class UsageDaily(Base):
    """Per-day roll-up of the ledger, by API key (0 = no key: session tokens). Written in the
    same transaction as the ledger row it sums."""

    __tablename__ = "usage_daily"

    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    api_key_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_calls: Mapped[int] = mapped_column(Money, default=0)
    input_tokens: Mapped[int] = mapped_column(Money, default=0)
    output_tokens: Mapped[int] = mapped_column(Money, default=0)
    cache_read_tokens: Mapped[int] = mapped_column(Money, default=0)
    cache_write_tokens: Mapped[int] = mapped_column(Money, default=0)
    cost_micros: Mapped[int] = mapped_column(Money, default=0)
    # The part of `cost_micros` the cost cap counts: all of it, unless the operator keeps usage
    # on the organization's own provider keys outside the cap (KARTA_BYOK_OUTSIDE_COST_CAP).
    cap_cost_micros: Mapped[int] = mapped_column(Money, server_default="0")


class AuditEvent(Base):
    """Append-only and hash-chained per organization (see `karta.core.auditchain`)."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"))
    seq: Mapped[int] = mapped_column(Integer)
    actor_type: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    resource_type: Mapped[str] = mapped_column(String(32))
    resource_id: Mapped[str | None] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(String(64))
    ip: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(), default=utcnow)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    # Set for events the data plane reports (approvals decided): a resent event lands once.
    client_event_id: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        UniqueConstraint("organization_id", "seq"),
        UniqueConstraint("organization_id", "client_event_id", name="uq_audit_events_client_event"),
    )


class AuditHead(Base):
    """The newest link of each organization's chain; locked while appending."""

    __tablename__ = "audit_heads"

    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, default=0)
    hash: Mapped[str] = mapped_column(String(64))


def _read_only(_mapper: Any, _connection: Any, target: AuditEvent) -> None:
    raise PermissionError("audit events are append-only")


event.listen(AuditEvent, "before_update", _read_only)
event.listen(AuditEvent, "before_delete", _read_only)
