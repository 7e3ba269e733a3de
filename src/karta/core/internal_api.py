"""The contract between the planes: the path, request body and answer of every internal route,
as Pydantic models that both sides use.

- The control plane's `/internal/…` routes (called by the data plane) and the data plane's
  `/v1/internal/…` routes (called by the control plane) declare these models as their request
  bodies and `response_model`s.
- The callers build requests from them and parse every answer with them, so a field renamed or
  retyped on one side fails type-checking or the tests of the other, and an answer that breaks
  the contract is refused where it arrives instead of failing deep inside a handler.

Compatibility rules (planes of different versions talk to each other during a rollout):

- Receivers ignore fields they do not know (Pydantic's default), so a sender may add one.
- A new field gets a default, so older senders stay valid; removing or renaming a field needs a
  release that stops reading it first.
- The JSON is the one the planes exchanged before this module existed, byte for byte: field
  order, `null`s and timestamps (`datetime.isoformat()`, see `Timestamp`) included.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, PlainSerializer, ValidationError

# The largest id either plane stores: ids are 32-bit `Integer` columns on PostgreSQL, and
# asyncpg refuses a larger parameter outright.
MAX_ID = 2**31 - 1
Id = Annotated[int, Field(strict=True, ge=1, le=MAX_ID)]
# Token counts and money: a float or a numeric string is refused, never rounded.
Count = Annotated[int, Field(strict=True, ge=0, le=2**62)]
Digest = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
# Python's isoformat (`+00:00`, or no offset for a naive time), not Pydantic's (`Z`): the form
# both planes have always sent and parsed.
Timestamp = Annotated[
    datetime, PlainSerializer(datetime.isoformat, return_type=str, when_used="json")
]


def problems(exc: ValidationError) -> str:
    """What breaks the contract in a payload, field by field, without the values: those can be
    secrets (a project's env vars), and this goes to logs."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
        for e in exc.errors(include_url=False, include_input=False)
    )


# --- paths ---------------------------------------------------------------------------------------

# The control plane's, called by the data plane. `{…}` are path parameters; every route that
# reads an organization's data takes `?organization_id=`.
WHOAMI = "/internal/whoami"
VALIDATE_KEY = "/internal/keys/validate"
PROJECT = "/internal/projects/{ref}"
ACTIVE_RELEASE = "/internal/projects/{ref}/active_release"
RELEASE = "/internal/projects/{ref}/releases/{version}"
ARTIFACT = "/internal/artifacts/{digest}"  # the archive itself (application/gzip)
PROJECT_ENV = "/internal/projects/{ref}/env"
BUDGET_CHECK = "/internal/budget/check"
MODEL_ACCESS = "/internal/model_access"  # ?organization_id=&project_id= (BYOK keys, settings)
USAGE_EVENTS = "/internal/usage/events"
AUDIT_EVENTS = "/internal/audit/events"
EMBED_KEY = "/internal/embed/keys/resolve"  # POST: what a publishable key opens
EMBED_SESSION_TOKENS = "/internal/embed/session_tokens"
EMBED_ORIGINS = "/internal/embed/origins"  # ?project=<ref>
HOSTED_PAGE = "/internal/embed/hosted/{org}/{project}"

# The data plane's, called by the control plane.
DATA_WHOAMI = "/v1/internal/whoami"
INVALIDATE = "/v1/internal/cache/invalidate"
# A data plane's, called by the other replicas: a session's action forwarded to its owner.
OWNER_TURN = "/v1/internal/sessions/{session_id}/messages"
OWNER_DECISION = "/v1/internal/sessions/{session_id}/inputs/{request_id}"
OWNER_INTERRUPT = "/v1/internal/sessions/{session_id}/interrupt"
OWNER_END = "/v1/internal/sessions/{session_id}/end"


class ServicePrincipal(BaseModel):
    """Both planes' `whoami`: the caller presented a valid service token."""

    principal_kind: Literal["service"]


# --- keys and projects ---------------------------------------------------------------------------


class ValidateKey(BaseModel):
    key: str = Field(max_length=200)


class KeyRefused(BaseModel):
    """An unknown or revoked key: nothing else is said about it."""

    valid: Literal[False] = False


class KeyValidated(BaseModel):
    valid: Literal[True] = True
    organization_id: Id
    organization_slug: str
    api_key_id: Id
    api_key_prefix: str
    scopes: list[str]
    budget_ok: bool  # no cap of the org or the key is spent yet
    budget_reason: str | None  # which cap is, when one is


KeyValidation = Annotated[KeyRefused | KeyValidated, Field(discriminator="valid")]


class ProjectInfo(BaseModel):
    id: Id
    object: Literal["project"] = "project"
    slug: str
    name: str
    organization_id: Id
    created_at: Timestamp


# --- releases and env vars -----------------------------------------------------------------------


class ReleaseInfo(BaseModel):
    """A project's release: the active one, or one version (a pinned session's)."""

    project_id: Id
    project_slug: str
    organization_id: Id
    version: Annotated[int, Field(ge=1)]
    digest: Digest  # sha256 of the archive at ARTIFACT
    harness: str | None
    status: str


class ProjectEnv(BaseModel):
    """A project's env vars, decrypted: for its harness processes only, never to be logged."""

    env: dict[str, str]


# --- provider keys (BYOK) and model settings ---------------------------------------------------


class ProviderCredential(BaseModel):
    """An organization's own provider key, decrypted: for the data plane's model proxy only,
    never to be logged (its repr hides the material)."""

    provider: Literal["anthropic", "openai", "openrouter", "bedrock", "vertex"]
    owner: Literal["org", "project"]
    key_id: Id  # which stored key this is (usage records it)
    material: dict[str, str] = Field(repr=False)


class ModelAccess(BaseModel):
    """How one project's (or, without one, the organization's) model calls are served: the
    effective model settings (the project's, else the organization's) and, per provider, the
    key to use (the project's, else the organization's). No key for a provider: the
    platform's serves it, if the platform has one."""

    provider: str | None = None  # where calls go; None: the harness's own API
    model: str | None = None  # the model calls use; None: the one the harness asks for
    endpoint_url: str | None = None  # an Anthropic-/OpenAI-compatible endpoint of the org's
    keys: list[ProviderCredential] = Field(default_factory=list, max_length=20)


# --- budgets -------------------------------------------------------------------------------------


class PendingUsage(BaseModel):
    """Usage the data plane has metered but the control plane has not counted yet (rows still
    in its outbox), summed per key and model so the control plane can price it."""

    api_key_id: Id | None = None
    model: str | None = Field(default=None, max_length=128)
    input_tokens: Count = 0
    output_tokens: Count = 0
    cache_read_tokens: Count = 0
    cache_write_tokens: Count = 0
    provider: str | None = Field(default=None, max_length=16)
    key_owner: Literal["platform", "org", "project"] = "platform"


class BudgetCheck(BaseModel):
    """May the organization (and the key) spend more? Asked before a turn runs and before each
    of its model calls."""

    organization_id: Id
    api_key_id: Id | None = None
    pending: list[PendingUsage] = Field(default_factory=list, max_length=1000)
    # An anonymous end user's turn: refused (402) when this embed key's anonymous cap is spent.
    embed_key_id: Id | None = None


class BudgetOk(BaseModel):
    ok: Literal[True]
    # Whether any cap applies to this payer (the org's, the key's, an embed key's anonymous
    # cap). When none does, the data plane may admit the payer's turns and model calls without
    # asking again for a few seconds, until the org's next `Invalidate`; while one does, it asks
    # every time. An answer without the field counts as limited.
    limited: bool = True


class BudgetRefusal(BaseModel):
    """The 402 that refuses a budget check (Karta's error shape,
    `karta.core.errors.BudgetExhausted`)."""

    error: Literal["budget_exhausted"] = "budget_exhausted"
    message: str
    reason: str  # which cap: monthly_token_limit, key_monthly_cost_limit, …


# --- outboxes: usage and audit events ------------------------------------------------------------


class UsageEvent(BaseModel):
    """One model call's tokens, as the model proxy read them from the provider's answer (or, for
    a harness the proxy does not see, a turn's as it reported them); idempotent on `event_id`."""

    event_id: str = Field(min_length=1, max_length=64)
    organization_id: Id
    api_key_id: Id | None = None
    project_id: Id | None = None
    session_id: str | None = Field(default=None, max_length=64)
    turn_id: str | None = Field(default=None, max_length=64)
    embed_key_id: Id | None = None  # an anonymous end user's turn: counts to the key's cap
    model: str | None = Field(default=None, max_length=128)
    input_tokens: Count = 0
    output_tokens: Count = 0
    cache_read_tokens: Count = 0
    cache_write_tokens: Count = 0
    occurred_at: Timestamp  # naive: UTC
    provider: str | None = Field(default=None, max_length=16)  # who served the call
    key_owner: Literal["platform", "org", "project"] = "platform"  # whose key paid for it


class UsageBatch(BaseModel):
    events: list[UsageEvent] = Field(max_length=1000)


class ReportedAuditEvent(BaseModel):
    """What the data plane may write to the audit log: only the actions listed here, so a data
    plane cannot forge a control-plane mutation. Idempotent on `event_id`."""

    event_id: str = Field(min_length=1, max_length=64)
    organization_id: Id
    actor_type: Literal["api_key", "end_user"]
    api_key_id: Id | None = None
    subject: str | None = Field(default=None, max_length=200)
    action: Literal["approval.decided"]
    resource_type: Literal["approval"]
    resource_id: str = Field(max_length=64)
    details: dict[str, str | int | bool | None] = Field(default_factory=dict, max_length=20)
    request_id: str | None = Field(default=None, max_length=64)
    ip: str | None = Field(default=None, max_length=64)
    occurred_at: Timestamp  # naive: UTC


class ReportedAuditBatch(BaseModel):
    events: list[ReportedAuditEvent] = Field(max_length=1000)


class BatchResult(BaseModel):
    """What became of a batch: new rows, event ids seen before, and event ids refused for good
    (an organization or key the control plane does not know), which resending cannot help."""

    accepted: Count
    duplicates: Count
    rejected: list[str]


# --- the data plane's cache ----------------------------------------------------------------------


class Invalidate(BaseModel):
    """Pushed after a key is revoked, a budget changes, a release is activated or rolled back,
    an env var is set or unset, or a provider key or model setting changes."""

    organization_id: Id


class Invalidated(BaseModel):
    organization_id: Id
    evicted: Count  # cached keys
    active_release_evicted: Count
    env_evicted: Count
    embed_evicted: Count = 0  # cached embed keys and CORS origins
    model_access_evicted: Count = 0
    budget_evicted: Count = 0  # cached "no cap applies" answers


# --- the embed edge (browsers) -------------------------------------------------------------------


class ResolveEmbedKey(BaseModel):
    embed_key: str = Field(max_length=200)


class EmbedKeyMissing(BaseModel):
    """No such publishable key, or a revoked one."""

    found: Literal[False] = False


class EmbedProject(BaseModel):
    """What a page may know of the project it chats with."""

    organization: str  # the organization's slug
    slug: str
    name: str


class EmbedKeyInfo(BaseModel):
    """A live publishable key: enough for the data plane to answer a page's config and to turn
    away origins and disabled keys without asking again. Never its identity secret."""

    found: Literal[True] = True
    embed_key_id: Id
    organization_id: Id
    project_id: Id
    project: EmbedProject
    enabled: bool
    allowed_origins: list[str]
    hosted_page: bool
    allow_anonymous: bool
    theme: dict[str, str]


EmbedKeyLookup = Annotated[EmbedKeyMissing | EmbedKeyInfo, Field(discriminator="found")]


class MintEmbedToken(BaseModel):
    """A browser's request for a session token, with the `Origin` its request carried (never an
    origin it named) and whether that is the data plane's own (its hosted chat page)."""

    embed_key: str = Field(max_length=200)
    origin: str = Field(max_length=300)
    own_origin: bool = False
    user_id: str | None = Field(default=None, max_length=200)
    identity_token: str | None = Field(default=None, max_length=200)
    anonymous_id: str | None = Field(default=None, max_length=100)
    ttl_seconds: int | None = Field(default=None, ge=1, le=3600)


class EmbedToken(BaseModel):
    """A session token for the key's project; `sub` is the verified user id, or the
    namespaced anonymous id (`anonymous_id` is what the browser keeps and sends back)."""

    minted: Literal[True] = True
    token: str
    expires_at: Timestamp
    sub: str
    verified: bool
    anonymous_id: str | None
    project: EmbedProject


class EmbedRefusal(BaseModel):
    """A refused mint, passed to the browser as it is, with its status: `origin_not_allowed`,
    `key_disabled`, `identity_invalid`, `anonymous_not_allowed` (403), `embed_key_not_found`
    (404), `budget_exhausted` (402, `reason` `anonymous_cost_limit` for the key's cap), …"""

    minted: Literal[False] = False
    status: Annotated[int, Field(ge=400, le=599)]
    error: str
    message: str
    reason: str | None = None


# Both answer 200: a refusal is the browser's, not the data plane's (whose own 401/403 mean
# a refused service token).
EmbedMint = Annotated[EmbedToken | EmbedRefusal, Field(discriminator="minted")]


class EmbedOrigins(BaseModel):
    """Which browser origins may call `/v1/projects/{ref}/…` (CORS)."""

    origins: list[str]
    hosted_page: bool  # the data plane's own origin too


class HostedPage(BaseModel):
    """What the data plane needs to render a project's hosted chat page."""

    embed_key: str
    project: EmbedProject
    theme: dict[str, str]


# --- between data-plane replicas -----------------------------------------------------------------


class Caller(BaseModel):
    """The caller a replica authenticated, as the session's owner acts for them (it checks
    again that they own the session, and bills and audits them)."""

    kind: Literal["api_key", "session", "open", "gateway"]
    organization_id: int | None
    organization_slug: str | None = None
    scopes: list[str] = []
    api_key_id: int | None = None
    api_key_prefix: str | None = None
    budget_ok: bool = True
    budget_reason: str | None = None
    project_id: int | None = None
    project_slug: str | None = None
    sub: str | None = None
    embed_key_id: int | None = None


class ForwardedCall(BaseModel):
    caller: Caller


class ForwardedTurn(ForwardedCall):
    text: str
    agent: str | None = None
    participant_name: str | None = None
    participant_type: str | None = None
    thinking: bool = False
    ephemeral: bool = False


class ForwardedDecision(ForwardedCall):
    decision: Literal["approve_once", "approve_session", "deny"]


class TurnStarted(BaseModel):
    turn_id: str
    after: Annotated[int, Field(ge=0)]  # the log position just before the turn's first event
    agent: str
    user_message: dict[str, Any]


class LogPosition(BaseModel):
    """The turn a decision or an interrupt acted on, and the log position before it."""

    turn_id: str
    after: Annotated[int, Field(ge=0)]


class SessionEnded(BaseModel):
    session_id: str
    status: Literal["ended"] = "ended"
