"""`POST /v1/projects/{ref}/chat/completions` and `POST /v1/projects/{ref}/responses`: the
OpenAI SDK's two text APIs, answered from a Karta turn (projections in `openai_chat.py` and
`openai_responses.py`).

A call without a session runs on a new one; the answer names it (`X-Karta-Session-Id` header,
`karta_session_id` field). Chat Completions continues a session named by that header or by
`metadata.karta_session_id`; Responses also by `previous_response_id`. A session that goes on
gets only the newest user text (the harness keeps the conversation); a Chat Completions call
that opens one sends the earlier messages too, as history (`http.chat_text`)."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from karta.dataplane.adapters.common import input_text
from karta.dataplane.adapters.http import (
    adapter_turn,
    chat_text,
    checked_text,
    open_session,
    route_class,
    session_id_of,
    stamp_for,
)
from karta.dataplane.adapters.openai_chat import ChatStream, chat_completion
from karta.dataplane.adapters.openai_responses import ResponsesStream, response_object
from karta.dataplane.auth import Resolver, requiring
from karta.dataplane.principal import WRITE, Principal
from karta.dataplane.runtime.turns import TurnHandle

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
    instructions: str | None = None
    store: bool = True
    metadata: dict[str, Any] | None = None


def responses_text(body: ResponsesRequest, *, opens: bool) -> str:
    """Responses input: a list of message items is a chat history (the earlier turns go with a
    call that opens a session, like Chat Completions'); a string or bare content is its text."""
    items = body.input
    if isinstance(items, list) and any(isinstance(i, dict) and "role" in i for i in items):
        return chat_text(items, opens, body.instructions, field="input")
    return checked_text(input_text(items), "input")


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
        named = session_id_of(request, body.metadata)
        text = chat_text(body.messages, named is None)
        session, created = await open_session(runtime, caller, named, body.metadata)
        stamp = stamp_for("chatcmpl", body.model, session, runtime.clock)
        usage = bool((body.stream_options or {}).get("include_usage"))
        return await adapter_turn(
            session,
            text,
            ChatStream(stamp, include_usage=usage) if body.stream else None,
            lambda outcome: chat_completion(stamp, outcome),
            created=created,
        )

    @api.post("/responses", responses=responses)
    async def create_response(body: ResponsesRequest, request: Request, caller: Writer) -> Any:
        """OpenAI Responses (unary or `stream`) on a Karta turn; `previous_response_id`
        continues the session that response ran on."""
        runtime = request.app.state.runtime
        previous = body.previous_response_id
        named = None if previous is not None else session_id_of(request, body.metadata)
        text = responses_text(body, opens=previous is None and named is None)
        if previous is not None:
            session, created = await runtime.response_session(caller, previous), False
        else:
            session, created = await open_session(runtime, caller, named, body.metadata)
        stamp = stamp_for("resp", body.model, session, runtime.clock)

        async def remember(handle: TurnHandle) -> None:
            if body.store:
                await session.remember_response(stamp.id, handle.turn_id)

        return await adapter_turn(
            session,
            text,
            ResponsesStream(stamp, previous) if body.stream else None,
            lambda outcome: response_object(stamp, outcome, previous),
            remember,
            created=created,
        )

    return api
