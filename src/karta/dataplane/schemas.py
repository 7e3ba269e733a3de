"""Request and response bodies of the session API, with the limits the spec sets."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_TEXT = 1_000_000
MAX_METADATA_KEYS = 50
MAX_METADATA_VALUE = 10_000
MAX_METADATA_KEY = 256


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateSession(Strict):
    metadata: dict[str, Any] = Field(default_factory=dict)
    session_id: str | None = Field(default=None, min_length=1, max_length=64)

    @field_validator("metadata")
    @classmethod
    def _limits(cls, value: dict[str, Any]) -> dict[str, Any]:
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


class SendMessage(Strict):
    text: str = Field(min_length=1, max_length=MAX_TEXT)
    agent: str | None = Field(default=None, min_length=1, max_length=200)
    participant_name: str | None = Field(default=None, min_length=1, max_length=200)
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
    participants: list[dict[str, Any]]
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
