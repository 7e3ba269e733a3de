"""Response bodies of the management API, so its OpenAPI document describes every answer.

Routes build plain dicts (`orgs.public_key`, `public_release`, …) and name one of these models
as their `response_model`: FastAPI checks the dict against it and writes it out in the model's
field order. Each model lists its fields in the order the dicts always had, so the JSON stays
byte for byte what it was. Timestamps are ISO 8601 strings made by `isoformat()` (Pydantic
would write UTC as `Z`), typed `str` with the `date-time` format.

Pydantic puts a base class's fields first and, with several bases, the last base's first:
`class Day(Totals, _DayField)` writes `day` before the totals.
"""

from __future__ import annotations

from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, Field

T = TypeVar("T")
Timestamp = Annotated[str, Field(json_schema_extra={"format": "date-time"})]
Day = Annotated[str, Field(json_schema_extra={"format": "date"})]


class Listing(BaseModel, Generic[T]):
    data: list[T]


# --- identity ------------------------------------------------------------------------------------


class UserView(BaseModel):
    id: int
    object: Literal["user"]
    email: str


class OrgView(BaseModel):
    id: int
    object: Literal["organization"]
    slug: str
    name: str
    created_at: Timestamp


class OrgWithRole(OrgView):
    role: str = Field(description="the caller's role in it")


class KeyView(BaseModel):
    id: int
    object: Literal["api_key"]
    name: str
    prefix: str = Field(description="the secret's first characters, for recognizing it")
    last4: str
    scopes: list[str]
    monthly_token_limit: int | None
    monthly_cost_limit_cents: int | None
    created_at: Timestamp
    last_used_at: Timestamp | None
    revoked_at: Timestamp | None


class CreatedKey(BaseModel):
    api_key: KeyView
    secret: str = Field(description="shown this once; only its hash is kept")


class Signed(BaseModel):
    user: UserView
    organization: OrgView
    api_key: KeyView
    secret: str = Field(description="the admin key's secret, shown this once")


class LoggedIn(BaseModel):
    token: str
    expires_at: Timestamp
    user: UserView


class KeyCaller(BaseModel):
    kind: Literal["api_key"]
    api_key_id: int
    organization: OrgView
    permissions: list[str]


class UserCaller(BaseModel):
    kind: Literal["user"]
    user: UserView
    organizations: list[OrgWithRole]


Me = Annotated[KeyCaller | UserCaller, Field(discriminator="kind")]


class MemberView(BaseModel):
    user_id: int
    object: Literal["member"]
    email: str
    role: str
    created_at: Timestamp


class InvitationView(BaseModel):
    id: int
    object: Literal["invitation"]
    organization: OrgView
    email: str
    role: str
    status: Literal["pending", "expired", "accepted", "declined", "revoked"]
    invited_by: str | None = Field(description="the inviter, as the audit log names actors")
    created_at: Timestamp
    expires_at: Timestamp


# --- projects and releases -----------------------------------------------------------------------


class ProjectView(BaseModel):
    id: int
    object: Literal["project"]
    slug: str
    name: str
    organization_id: int
    created_at: Timestamp


class SessionToken(BaseModel):
    token: str = Field(description="an HS256 JWT for one project's routes")
    expires_at: Timestamp
    project: ProjectView
    sub: str | None


class EmbedKeyView(BaseModel):
    id: int
    object: Literal["embed_key"]
    project: str
    name: str
    key: str = Field(description="the publishable key (`pk_live_…`): public, it ships in HTML")
    allowed_origins: list[str]
    theme: dict[str, str]
    enabled: bool
    hosted_page: bool
    allow_anonymous: bool
    anonymous_cost_limit_cents: int | None
    anonymous_period: Literal["day", "month"]
    created_at: Timestamp
    updated_at: Timestamp
    revoked_at: Timestamp | None


class CreatedEmbedKey(BaseModel):
    embed_key: EmbedKeyView
    identity_secret: str = Field(
        description="signs verified end users (HMAC-SHA256 of the user id); shown this once"
    )


class ReleaseView(BaseModel):
    id: int
    object: Literal["release"]
    project: str
    version: int
    name: str = Field(description="`v` and the version")
    digest: str = Field(description="`sha256:` and the archive's hex digest")
    size: int
    status: Literal["ready", "failed"]
    active: bool
    harness: str | None
    app_name: str | None
    agents: list[str]
    build_log: str
    created_by: str | None
    created_at: Timestamp


class PublishedRelease(ReleaseView):
    created: bool = Field(description="false when the same content was published before")


class EnvVarView(BaseModel):
    name: str
    object: Literal["env_var"]
    value_hint: str = Field(description="`…` and at most the value's last two characters")
    updated_at: Timestamp


class ProviderKeyView(BaseModel):
    id: int
    object: Literal["provider_key"]
    provider: str
    project: str | None = Field(description="the project's slug; null for the org's own key")
    label: str
    last4: str = Field(description="the last four characters of the key (never more)")
    region: str | None
    status: Literal["active", "revoked"]
    created_by: str | None
    created_at: Timestamp
    revoked_at: Timestamp | None


class CreatedProviderKey(ProviderKeyView):
    replaced: int | None = Field(description="the key it replaced (now revoked), if any")


class ModelSettingsView(BaseModel):
    object: Literal["model_settings"]
    project: str | None
    provider: str | None
    model: str | None
    endpoint_url: str | None
    updated_at: Timestamp | None


# --- money ---------------------------------------------------------------------------------------


class Period(BaseModel):
    start: Day
    end: Day = Field(description="the first day after the period")


class BudgetState(BaseModel):
    monthly_token_limit: int | None
    monthly_cost_limit_cents: int | None
    used_tokens: int
    used_cost_micros: int
    used_cost_cents: int
    state: Literal["ok", "exhausted"]
    reason: str | None = Field(description="the cap that is spent, when one is")
    updated_at: Timestamp


class _PeriodField(BaseModel):
    period: Period


class BudgetView(BudgetState, _PeriodField):
    """The caps and the current month's state (`period` first)."""


class Totals(BaseModel):
    model_calls: int = Field(description="metered model calls (the proxy meters each one)")
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_micros: int
    total_tokens: int = Field(description="input plus output: what budgets count")
    cost_cents: int = Field(description="cost_micros rounded up to the cent")


class _DayField(BaseModel):
    day: Day


class _KeyField(BaseModel):
    api_key_id: int | None = Field(description="null for session tokens' usage")


class DayTotals(Totals, _DayField):
    pass


class KeyTotals(Totals, _KeyField):
    pass


class ModelTotals(BaseModel):
    model: str | None
    provider: str | None = Field(description="who served the calls (null: not recorded)")
    key_owner: Literal["platform", "org", "project"] = Field(
        description="whose key paid the provider: the platform's, or your own (BYOK)"
    )
    model_calls: int
    input_tokens: int
    output_tokens: int
    cost_micros: int
    cost_cents: int


class UsageSummary(BaseModel):
    period: Period
    totals: Totals
    daily: list[DayTotals]
    by_key: list[KeyTotals]
    by_model: list[ModelTotals]
    budget: BudgetState


# --- audit ---------------------------------------------------------------------------------------


class AuditRow(BaseModel):
    """Exactly the fields the hash chain covers, plus its links."""

    organization_id: int
    seq: int
    actor_type: str
    actor_id: str | None
    action: str
    resource_type: str
    resource_id: str | None
    request_id: str | None
    ip: str | None
    details: dict[str, Any]
    created_at: Timestamp
    prev_hash: str
    hash: str


class ChainHead(BaseModel):
    seq: int
    hash: str


class AuditPage(BaseModel):
    data: list[AuditRow]
    head: ChainHead
    next_after: int | None = Field(
        description="pass as `after` for the next page; null at the head"
    )
