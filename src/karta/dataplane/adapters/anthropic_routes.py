"""`POST /v1/projects/{ref}/messages` (also at `…/anthropic/v1/messages`, where the Anthropic
SDK looks with `base_url = …/v1/projects/{ref}/anthropic`): Anthropic Messages answered from a
Karta turn (projection in `anthropic_messages.py`).

A call without a session runs on a new one; the answer names it (`X-Karta-Session-Id` header,
`karta_session_id` field); the header or `metadata.karta_session_id` continues it. A session
that goes on gets only the newest user message (the harness keeps the conversation); a call
that opens one sends the earlier messages and `system` too, as history (`http.chat_text`)."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from karta.dataplane.adapters.anthropic_messages import MessagesStream, message_object
from karta.dataplane.adapters.http import (
    adapter_turn,
    chat_text,
    open_session,
    route_class,
    session_id_of,
    stamp_for,
)
from karta.dataplane.auth import Resolver, requiring
from karta.dataplane.principal import WRITE, Principal

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    409: "invalid_request_error",
    413: "request_too_large",
    422: "invalid_request_error",
    503: "overloaded_error",
}
SSE_DOC = {"content": {"text/event-stream": {}}, "description": "SSE when `stream` is true"}


def anthropic_error(status: int, body: dict[str, Any]) -> dict[str, Any]:
    """Anthropic's error body: `{"type": "error", "error": {type, message}}`, with Karta's
    code as `error.code` (and its extra fields, such as a 402's `reason`)."""
    extra = {k: v for k, v in body.items() if k not in ("error", "message")}
    return {
        "type": "error",
        "error": {
            "type": ERROR_TYPES.get(status, "api_error"),
            "message": body.get("message", ""),
            "code": body.get("error"),
            **extra,
        },
    }


class MessagesRequest(BaseModel):
    """The fields Karta reads (`system` only as history, when the call opens a session); the
    SDK's others (max_tokens, tools, …) are accepted, unused: the harness app decides its
    prompt, tools and model."""

    model_config = ConfigDict(extra="allow")
    messages: list[dict[str, Any]] = Field(min_length=1)
    system: str | list[Any] | None = None
    model: str | None = None
    stream: bool = False
    metadata: dict[str, Any] | None = None


def router(resolve: Resolver, *, errors: tuple[int, ...]) -> APIRouter:
    api = APIRouter(route_class=route_class(anthropic_error), tags=["adapters"])
    Writer = Annotated[Principal, Depends(requiring(WRITE, resolve))]
    statuses = sorted({*errors, 401, 402, 403, 404, 409, 422})
    responses: dict[int | str, dict[str, Any]] = {
        200: SSE_DOC,
        **{s: {"description": "an Anthropic error body"} for s in statuses},
    }

    async def create_message(body: MessagesRequest, request: Request, caller: Writer) -> Any:
        """Anthropic Messages (unary or `stream`) on a Karta turn."""
        runtime = request.app.state.runtime
        named = session_id_of(request, body.metadata)
        text = chat_text(body.messages, named is None, body.system)
        session, created = await open_session(runtime, caller, named, body.metadata)
        stamp = stamp_for("msg", body.model, session, runtime.clock)
        return await adapter_turn(
            session,
            text,
            MessagesStream(stamp) if body.stream else None,
            lambda outcome: message_object(stamp, outcome),
            created=created,
        )

    for path in ("/messages", "/anthropic/v1/messages"):
        api.post(path, responses=responses)(create_message)
    return api
