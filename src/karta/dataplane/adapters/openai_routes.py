"""`POST /v1/projects/{ref}/chat/completions` and `POST /v1/projects/{ref}/responses`: the
OpenAI SDK's two text APIs, answered from a Karta turn (projections in `openai_chat.py` and
`openai_responses.py`).

A call without a session runs on a new one; the answer names it (`X-Karta-Session-Id` header,
`karta_session_id` field). Chat Completions continues a session named by that header or by
`metadata.karta_session_id`; Responses also by `previous_response_id`. Only the newest user
text is sent: the harness keeps the conversation."""

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from karta.dataplane.adapters import responses_store
from karta.dataplane.adapters.common import (
    Stamp,
    TurnFailed,
    fold,
    input_text,
    last_user_text,
)
from karta.dataplane.adapters.http import (
    checked_text,
    open_session,
    projected_frames,
    route_class,
    session_id_of,
    sse,
    start_turn,
    turn_events,
    unary,
)
from karta.dataplane.adapters.openai_chat import ChatStream, chat_completion
from karta.dataplane.adapters.openai_responses import ResponsesStream, response_object
from karta.dataplane.auth import Resolver, requiring
from karta.errors import NotFound, SessionNotFound
from karta.ids import new_id
from karta.principal import WRITE, Principal

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "insufficient_quota",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    422: "invalid_request_error",
    503: "service_unavailable",
}
SSE_DOC = {"content": {"text/event-stream": {}}, "description": "SSE when `stream` is true"}


def openai_error(status: int, body: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's error body: `{"error": {message, type, param, code}}` (Karta's extra fields,
    such as a 402's `reason`, ride along)."""
    extra = {k: v for k, v in body.items() if k not in ("error", "message")}
    return {
        "error": {
            "message": body.get("message", ""),
            "type": ERROR_TYPES.get(status, "api_error"),
            "param": extra.get("field"),
            "code": body.get("error"),
            **extra,
        }
    }


class Lenient(BaseModel):
    """The fields Karta reads; the SDKs' others (temperature, tools, …) are accepted, unused."""

    model_config = ConfigDict(extra="allow")


class ChatRequest(Lenient):
    messages: list[dict[str, Any]] = Field(min_length=1)
    model: str | None = None
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None


class ResponsesRequest(Lenient):
    input: str | list[Any]
    model: str | None = None
    stream: bool = False
    previous_response_id: str | None = Field(default=None, max_length=64)
    store: bool = True
    metadata: dict[str, Any] | None = None


def failed(events_error: dict[str, Any]) -> TurnFailed:
    return TurnFailed(events_error["message"], reason=events_error["code"])


def router(resolve: Resolver, *, errors: tuple[int, ...]) -> APIRouter:
    api = APIRouter(route_class=route_class(openai_error), tags=["adapters"])
    Writer = Annotated[Principal, Depends(requiring(WRITE, resolve))]
    statuses = sorted({*errors, 401, 402, 403, 404, 409, 422})
    responses: dict[int | str, dict[str, Any]] = {
        200: SSE_DOC,
        **{s: {"description": "an OpenAI error body"} for s in statuses},
    }

    @api.post("/chat/completions", responses=responses)
    async def chat_completions(body: ChatRequest, request: Request, caller: Writer) -> Any:
        """OpenAI Chat Completions (unary or `stream`) on a Karta turn."""
        runtime = request.app.state.runtime
        text = checked_text(last_user_text(body.messages), "messages")
        named = session_id_of(request, body.metadata)
        session_id = await open_session(runtime, caller, named, body.metadata)
        handle = await start_turn(runtime, caller, session_id, text)
        stamp = Stamp(new_id("chatcmpl"), int(time.time()), body.model or "karta", session_id)
        if body.stream:
            usage = bool((body.stream_options or {}).get("include_usage"))
            projection = ChatStream(stamp, include_usage=usage)
            return sse(projected_frames(runtime, handle, projection), session_id)
        events = await turn_events(runtime, handle)
        _, outcome = fold(events)
        if outcome.error is not None:
            raise failed(outcome.error)
        return unary(chat_completion(stamp, events), session_id)

    @api.post("/responses", responses=responses)
    async def create_response(body: ResponsesRequest, request: Request, caller: Writer) -> Any:
        """OpenAI Responses (unary or `stream`) on a Karta turn; `previous_response_id`
        continues the session that response ran on."""
        runtime = request.app.state.runtime
        text = checked_text(input_text(body.input), "input")
        if body.previous_response_id is not None:
            session_id = await responses_store.session_of(runtime.db, body.previous_response_id)
            missing = NotFound(f"previous response {body.previous_response_id!r} not found")
            if session_id is None:
                raise missing
            try:
                await runtime.get_session(caller, session_id)
            except SessionNotFound:
                raise missing from None
        else:
            named = session_id_of(request, body.metadata)
            session_id = await open_session(runtime, caller, named, body.metadata)
        handle = await start_turn(runtime, caller, session_id, text)
        stamp = Stamp(new_id("resp"), int(time.time()), body.model or "karta", session_id)
        if body.store:
            await responses_store.remember(runtime.db, stamp.id, session_id, handle.turn_id)
        if body.stream:
            projection = ResponsesStream(stamp, body.previous_response_id)
            return sse(projected_frames(runtime, handle, projection), session_id)
        events = await turn_events(runtime, handle)
        final, outcome = fold(events)
        if outcome.error is not None:
            raise failed(outcome.error)
        return unary(response_object(stamp, final, outcome, body.previous_response_id), session_id)

    return api
