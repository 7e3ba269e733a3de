"""Request and response bodies of the session API, with the limits the spec sets."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

MAX_TEXT = 1_000_000
MAX_METADATA_KEYS = 50
MAX_METADATA_VALUE = 10_000
MAX_METADATA_KEY = 256
MAX_PARTICIPANTS = 50
PROJECT_SLUG = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
EVENT_ID = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
GATEWAY_URL = r"^https?://[^\s/?#]+(/[^\s?#]*)?$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _printable(value: str) -> str:
    """Names reach the harness in the attribution line: one line, no control characters."""
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ValueError("must not contain control characters or line breaks")
    return value


Name = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_printable)]
Url = Annotated[str, Field(max_length=500, pattern=GATEWAY_URL)]
SessionId = Annotated[str, Field(min_length=1, max_length=64)]


def check_metadata(value: dict[str, Any]) -> dict[str, Any]:
    if len(value) > MAX_METADATA_KEYS:
        raise ValueError(f"at most {MAX_METADATA_KEYS} metadata keys are allowed")
    for key, item in value.items():
        size = len(item) if isinstance(item, str) else len(json.dumps(item))
        if size > MAX_METADATA_VALUE or len(key) > MAX_METADATA_KEY:
            raise ValueError(
                f"metadata {key[:40]!r}: keys are limited to {MAX_METADATA_KEY} characters "
                f"and values to {MAX_METADATA_VALUE} (as JSON)"
            )
    return value


Metadata = Annotated[dict[str, Any], AfterValidator(check_metadata)]


class ParticipantIn(Strict):
    id: Name | None = Field(
        default=None, description="unique in the session; defaults to `project` for an agent"
    )
    type: Literal["human", "ai"]
    display_name: Name | None = Field(default=None, description="defaults to the id")
    gateway_url: Url | None = Field(
        default=None, description="the participant lives on the instance of this gateway"
    )
    session_id: SessionId | None = Field(
        default=None, description="the session the participant lives in (here or there)"
    )
    project: str | None = Field(
        default=None,
        pattern=PROJECT_SLUG,
        description="an AI participant that is the agent of this Karta project",
    )

    @model_validator(mode="after")
    def _named(self) -> ParticipantIn:
        if self.project is not None and self.type != "ai":
            raise ValueError("only an `ai` participant can be a project's agent")
        if self.id is None:
            if self.project is None:
                raise ValueError("`id` is required (or `project`, for a project's agent)")
            self.id = self.project
        return self


class ParticipantOut(BaseModel):
    id: str
    type: Literal["human", "ai"]
    display_name: str
    joined_at: str
    left_at: str | None
    gateway_url: str | None
    session_id: str | None = Field(description="where the participant lives, if elsewhere")
    project: str | None


class CreateSession(Strict):
    metadata: Metadata = Field(default_factory=dict)
    session_id: str | None = Field(default=None, min_length=1, max_length=64)
    participants: list[ParticipantIn] = Field(default_factory=list, max_length=MAX_PARTICIPANTS)

    @field_validator("participants")
    @classmethod
    def _unique(cls, value: list[ParticipantIn]) -> list[ParticipantIn]:
        ids = [p.id for p in value]
        if len(set(ids)) != len(ids):
            raise ValueError("participant ids must be unique")
        return value


class SendMessage(Strict):
    text: str = Field(min_length=1, max_length=MAX_TEXT)
    agent: str | None = Field(default=None, min_length=1, max_length=200)
    participant_name: Name | None = Field(
        default=None, description="the sending participant's id (joins the session if new)"
    )
    participant_type: Literal["human", "ai"] | None = None
    thinking: bool = False
    stream: bool = False


class Decide(Strict):
    decision: Literal["approve_once", "approve_session", "deny"]


class PendingInputOut(BaseModel):
    request_id: str
    kind: str
    tool: str
    target: str | None
    input: dict[str, Any]
    message: str
    options: list[str]
    expires_at: str


class SessionProjectOut(BaseModel):
    ref: str | None = Field(description="the project's slug")
    project_id: int
    version: int | None = Field(description="the pinned release; null: the served folder")


class SessionReleaseOut(BaseModel):
    version: int
    digest: str = Field(description="sha256:<hex> of the release archive")


class SessionOut(BaseModel):
    id: str
    object: Literal["session"]
    app: str
    metadata: dict[str, Any]
    status: Literal["active", "ended"]
    current_agent: str | None
    permission_mode: str | None
    participants: list[ParticipantOut]
    pending_input: PendingInputOut | None
    project: SessionProjectOut | None = Field(
        default=None, description="the project a project-route session belongs to"
    )
    release: SessionReleaseOut | None = Field(
        default=None,
        description="the published release the session is pinned to for life; null: it runs "
        "the served folder's working copy",
    )
    turn_running: bool
    last_event_seq: int
    parent_id: str | None
    created_at: str
    updated_at: str


class MessageOut(BaseModel):
    id: str
    role: Literal["user", "assistant"]
    text: str
    agent: str
    parts: list[dict[str, Any]] = Field(default_factory=list)
    timestamp: str
    participant_name: str | None = None
    participant_type: str | None = None


class Usage(BaseModel):
    input_tokens: int | None
    output_tokens: int | None
    total_tokens: int | None
    model_config = ConfigDict(extra="allow")


class TurnOut(BaseModel):
    text: str
    session_id: str
    turn_id: str
    agent: str
    status: Literal["completed", "failed", "cancelled", "paused"] = Field(
        description="how the turn ended, or `paused` while it waits for a decision"
    )
    messages: list[MessageOut]
    usage: Usage
    errors: list[dict[str, Any]]
    pending_input: PendingInputOut | None


class DecisionOut(BaseModel):
    events: list[dict[str, Any]]
    session: SessionOut


class SessionPage(BaseModel):
    object: Literal["list"] = "list"
    data: list[SessionOut]
    has_more: bool
    next_cursor: str | None = Field(
        description="pass as `after` to get the next page; null on the last page"
    )


class InterruptOut(BaseModel):
    turn_id: str
    status: Literal["cancelled"]
    events: list[dict[str, Any]] = Field(description="the turn's events since the interrupt")
    session: SessionOut


class TranscriptPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["text", "reasoning", "tool"]


class TranscriptMessage(BaseModel):
    id: str
    role: Literal["user", "assistant"]
    parts: list[TranscriptPart]
    text: str = Field(description="the message's text parts, joined by a blank line")
    created_at: str | None


class TranscriptPage(BaseModel):
    object: Literal["list"] = "list"
    data: list[TranscriptMessage]
    has_more: bool
    next_cursor: str | None


class GatewayEvent(Strict):
    event_id: str | None = Field(
        default=None,
        pattern=EVENT_ID,
        description="idempotency key: a replay with the same id does nothing and gets the "
        "first answer (default: a new id)",
    )
    sender_id: Name
    sender_type: Literal["human", "ai"]
    event_type: Literal["message", "reply"] = Field(
        description="`message` (an agent recipient answers it with a turn) or `reply` (an "
        "answer, only recorded)"
    )
    message: str = Field(min_length=1, max_length=MAX_TEXT)
    session_id: SessionId | None = Field(
        default=None, description="the session the event is sent in (submit: absent → a new one)"
    )
    recipient_id: Name | None = Field(
        default=None, description="submit: a participant of the session (absent: its agent)"
    )
    sender_gateway_url: Url | None = Field(
        default=None, description="where answers to the sender are delivered"
    )
    sender_organization_id: int | None = Field(
        default=None,
        description="set by the sending gateway; believed only from the service credential",
    )
    in_reply_to: str | None = Field(default=None, pattern=EVENT_ID)
    metadata: Metadata = Field(default_factory=dict)


class SubmitEvent(GatewayEvent):
    """What a participant submits: a message (answers travel only between gateways)."""

    @model_validator(mode="after")
    def _a_message(self) -> SubmitEvent:
        if self.event_type != "message":
            raise ValueError("event_type: only `message` events are submitted")
        return self


class GatewayDelivery(Strict):
    recipient_id: Name
    event: GatewayEvent
    session_id: SessionId | None = Field(
        default=None,
        description="the recipient's session here; absent: `recipient_id` names a project "
        "whose agent gets a new session",
    )
    recipient_gateway_url: Url | None = None


class GatewayAccepted(BaseModel):
    status: Literal["ok"] = "ok"
    event_id: str
    session_id: str = Field(description="the session the event was recorded or answered in")
    turn_id: str | None = Field(description="the turn the event started, if an agent took it")


class GatewayTrustOut(BaseModel):
    organization_id: int
    trusts: list[int] = Field(
        description="organizations this one exchanges gateway events with (each must trust it back)"
    )
