"""Typed answers of the session API and the management API.

Every model keeps fields it does not know (`extra="allow"`) and types enumerations as plain
strings, so a newer server never breaks an older client; `to_dict()` gives the JSON back.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class KartaModel(BaseModel):
    model_config = ConfigDict(extra="allow")

    def to_dict(self) -> dict[str, Any]:
        """The object as the JSON it came from (unknown fields included)."""
        return self.model_dump(mode="json", exclude_unset=True)


# --- the session API ------------------------------------------------------------------------


class PendingInput(KartaModel):
    """A tool waiting for a decision: answer it with `inputs.decide(session, request_id, …)`."""

    request_id: str
    kind: str = "tool_permission"
    tool: str | None = None
    target: str | None = None
    input: dict[str, Any] = Field(default_factory=dict)
    message: str = ""
    options: list[str] = Field(default_factory=list)
    expires_at: str | None = None


class SessionProject(KartaModel):
    ref: str | None = None
    project_id: int
    version: int | None = None


class SessionRelease(KartaModel):
    version: int
    digest: str


class Session(KartaModel):
    id: str
    object: str = "session"
    app: str
    metadata: dict[str, Any] = Field(default_factory=dict)
    status: str  # active | ended
    current_agent: str | None = None
    permission_mode: str | None = None
    participants: list[dict[str, Any]] = Field(default_factory=list)
    pending_input: PendingInput | None = None
    project: SessionProject | None = None
    release: SessionRelease | None = None
    turn_running: bool = False
    last_event_seq: int = 0
    parent_id: str | None = None
    created_at: str
    updated_at: str


class Usage(KartaModel):
    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None


class Message(KartaModel):
    """One message of a turn's answer: the user's, or the assistant's with its parts (text,
    reasoning, tool, input-required and error parts, as the turn's events folded them)."""

    id: str | None = None
    role: str
    text: str = ""
    agent: str | None = None
    parts: list[dict[str, Any]] = Field(default_factory=list)
    timestamp: str | None = None
    participant_name: str | None = None
    participant_type: str | None = None


class Turn(KartaModel):
    """A turn's answer: how it ended (`completed`, `failed`, `cancelled`) or `paused` for a
    decision (then `pending_input` says which)."""

    text: str
    session_id: str
    turn_id: str
    agent: str | None = None
    status: str
    messages: list[Message] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    errors: list[dict[str, Any]] = Field(default_factory=list)
    pending_input: PendingInput | None = None


class Decided(KartaModel):
    """The answer to a decision: the turn's events that followed it (up to its end or the next
    decision) and the session."""

    events: list[dict[str, Any]]
    session: Session


class Interrupted(KartaModel):
    turn_id: str
    status: str  # cancelled
    events: list[dict[str, Any]] = Field(default_factory=list)
    session: Session


class TranscriptMessage(KartaModel):
    id: str
    role: str
    text: str = ""
    parts: list[dict[str, Any]] = Field(default_factory=list)
    created_at: str | None = None


class Agent(KartaModel):
    name: str
    description: str | None = None
    default: bool = False


class AppInfo(KartaModel):
    name: str
    harness: str
    agents: list[Agent] = Field(default_factory=list)
    skills: list[str] = Field(default_factory=list)


# --- the management API ---------------------------------------------------------------------


class User(KartaModel):
    id: int
    email: str


class Organization(KartaModel):
    id: int
    slug: str
    name: str
    role: str | None = None  # the caller's, in a list of the caller's organizations
    created_at: str | None = None


class ApiKey(KartaModel):
    id: int
    name: str
    prefix: str
    last4: str
    scopes: list[str]
    monthly_token_limit: int | None = None
    monthly_cost_limit_cents: int | None = None
    created_at: str
    last_used_at: str | None = None
    revoked_at: str | None = None


class CreatedKey(KartaModel):
    api_key: ApiKey
    secret: str  # shown this once


class SignedUp(KartaModel):
    user: User
    organization: Organization
    api_key: ApiKey
    secret: str


class LoggedIn(KartaModel):
    token: str
    expires_at: str
    user: User


class Caller(KartaModel):
    """Who the credential is: `kind` `api_key` (with its organization and permissions) or
    `user` (with the organizations they belong to)."""

    kind: str
    api_key_id: int | None = None
    organization: Organization | None = None
    permissions: list[str] = Field(default_factory=list)
    user: User | None = None
    organizations: list[Organization] = Field(default_factory=list)


class Member(KartaModel):
    user_id: int
    email: str
    role: str
    created_at: str


class Invitation(KartaModel):
    id: int
    organization: Organization
    email: str
    role: str
    status: str
    invited_by: str | None = None
    created_at: str
    expires_at: str


class Project(KartaModel):
    id: int
    slug: str
    name: str
    organization_id: int
    created_at: str


class SessionToken(KartaModel):
    token: str
    expires_at: str
    project: Project
    sub: str | None = None


class Release(KartaModel):
    id: int
    project: str
    version: int
    name: str
    digest: str
    size: int
    status: str  # ready | failed
    active: bool
    harness: str | None = None
    app_name: str | None = None
    agents: list[str] = Field(default_factory=list)
    build_log: str = ""
    created_by: str | None = None
    created_at: str
    created: bool | None = None  # on publish: False when the same content was published before


class EnvVar(KartaModel):
    name: str
    value_hint: str
    updated_at: str


class EmbedKey(KartaModel):
    """A project's publishable key for browsers (`pk_live_…`, public: it ships in HTML)."""

    id: int
    project: str
    name: str
    key: str
    allowed_origins: list[str]
    theme: dict[str, str]
    enabled: bool
    hosted_page: bool
    allow_anonymous: bool
    anonymous_cost_limit_cents: int | None
    anonymous_period: str
    created_at: str
    updated_at: str
    revoked_at: str | None


class CreatedEmbedKey(KartaModel):
    embed_key: EmbedKey
    identity_secret: str  # signs verified end users; shown this once


class ProviderKey(KartaModel):
    """The organization's (or a project's) own key for a model provider (BYOK), shown by its
    last four characters only."""

    id: int
    provider: str
    project: str | None = None  # the project's slug; None for the organization's own key
    label: str
    last4: str
    region: str | None = None
    status: str  # active | revoked
    created_by: str | None = None
    created_at: str
    revoked_at: str | None = None


class CreatedProviderKey(ProviderKey):
    replaced: int | None = None  # the key it replaced (now revoked), if any


class ModelSettings(KartaModel):
    """Which provider and model the organization's (or a project's) calls use; None: the
    harness's own choice."""

    project: str | None = None
    provider: str | None = None
    model: str | None = None
    endpoint_url: str | None = None
    updated_at: str | None = None


class Period(KartaModel):
    start: str
    end: str  # the first day after the period


class Budget(KartaModel):
    monthly_token_limit: int | None = None
    monthly_cost_limit_cents: int | None = None
    used_tokens: int = 0
    used_cost_micros: int = 0
    used_cost_cents: int = 0
    state: str = "ok"  # ok | exhausted
    reason: str | None = None
    updated_at: str | None = None
    period: Period | None = None


class UsageTotals(KartaModel):
    turns: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_micros: int = 0
    total_tokens: int = 0
    cost_cents: int = 0
    day: str | None = None
    api_key_id: int | None = None
    model: str | None = None


class UsageSummary(KartaModel):
    period: Period
    totals: UsageTotals
    daily: list[UsageTotals] = Field(default_factory=list)
    by_key: list[UsageTotals] = Field(default_factory=list)
    by_model: list[UsageTotals] = Field(default_factory=list)
    budget: Budget


class AuditRow(KartaModel):
    organization_id: int
    seq: int
    actor_type: str
    actor_id: str | None = None
    action: str
    resource_type: str
    resource_id: str | None = None
    request_id: str | None = None
    ip: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)
    created_at: str
    prev_hash: str
    hash: str


class ChainHead(KartaModel):
    seq: int
    hash: str


class AuditPage(KartaModel):
    data: list[AuditRow]
    head: ChainHead
    next_after: int | None = None
