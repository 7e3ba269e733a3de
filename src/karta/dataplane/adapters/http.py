"""What the adapters' routers share: errors in each SDK's shape, the caller, the session a
call runs on, and the turn streamed through a projection.

The adapters resolve callers with the project family's own dependency (`project_principal`:
API keys and session tokens, tenancy, release resolution) and run turns through the runtime
like the native routes, so the budget gate, pinning and approvals are the same code."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import ValidationError

from karta.core.clock import Clock
from karta.core.errors import KartaError, Unavailable
from karta.core.ids import new_id
from karta.core.turn_fold import TurnOutcome
from karta.dataplane import streaming
from karta.dataplane.adapters.common import (
    Stamp,
    TurnFailed,
    input_text,
    split_turns,
    with_history,
)
from karta.dataplane.principal import Principal
from karta.dataplane.runtime.handle import SessionHandle
from karta.dataplane.runtime.service import Runtime
from karta.dataplane.runtime.turns import TurnHandle, TurnRequest
from karta.dataplane.schemas import MAX_TEXT, CreateSession
from karta.dataplane.streaming import Projection

SESSION_HEADER = "X-Karta-Session-Id"
SESSION_KEY = "karta_session_id"  # the metadata key that names a session to continue

# An SDK's error body for (status, Karta's error body).
ErrorShape = Callable[[int, dict[str, Any]], dict[str, Any]]


class InvalidRequest(KartaError):
    status = 422
    code = "validation_error"


def _fields(exc: RequestValidationError | ValidationError) -> list[dict[str, str]]:
    out = []
    for e in exc.errors():
        loc = [str(p) for p in e["loc"] if p not in ("body", "query", "path", "header")]
        out.append({"field": ".".join(loc) or "body", "message": str(e["msg"])})
    return out


def error_response(shape: ErrorShape, exc: Exception) -> JSONResponse:
    if isinstance(exc, RequestValidationError | ValidationError):
        fields = _fields(exc)
        summary = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
        status, body = 422, {"error": "validation_error", "message": summary, "fields": fields}
    else:
        assert isinstance(exc, KartaError)
        status, body = exc.status, exc.body()
    # The SDKs retry 409s and 5xx by default; only a 503 is worth it.
    headers = {"x-should-retry": "true" if status == 503 else "false"}
    if isinstance(exc, Unavailable):
        headers["Retry-After"] = str(exc.retry_after)
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(shape(status, body), status_code=status, headers=headers)


def route_class(shape: ErrorShape) -> type[APIRoute]:
    """Routes whose errors — from the caller's resolution, validation or the runtime — are
    rendered in `shape` instead of Karta's own error body."""

    class AdapterRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handle = super().get_route_handler()

            async def handler(request: Request) -> Response:
                try:
                    return await handle(request)
                except (KartaError, RequestValidationError) as exc:
                    return error_response(shape, exc)

            return handler

    return AdapterRoute


# --- sessions and turns ---------------------------------------------------------------------


def session_id_of(request: Request, metadata: dict[str, Any] | None) -> str | None:
    """The Karta session a call continues: the `X-Karta-Session-Id` header, else metadata's
    `karta_session_id`; None opens a new session."""
    named = request.headers.get(SESSION_HEADER)
    if not named and metadata:
        value = metadata.get(SESSION_KEY)
        named = value if isinstance(value, str) else None
    return named or None


async def open_session(
    runtime: Runtime, caller: Principal, session_id: str | None, metadata: dict[str, Any] | None
) -> tuple[SessionHandle, bool]:
    """The session to run on: the named one (404 if it is not the caller's), else a new one
    with `metadata` (less Karta's own key); and whether it was made for this call."""
    if session_id is not None:
        return await runtime.session(caller, session_id), False
    caller.check_budget()  # refuse before a workspace is made for nothing
    meta = {k: v for k, v in (metadata or {}).items() if k != SESSION_KEY}
    try:
        meta = CreateSession(metadata=meta).metadata
    except ValidationError as exc:
        raise InvalidRequest(str(exc.errors()[0]["msg"]), field="metadata") from None
    handle, _ = await runtime.create_session(caller, meta)
    return handle, True


def checked_text(text: str, field: str) -> str:
    """The user text a call sends, refused (422) before anything is created when unusable."""
    if not text.strip():
        raise InvalidRequest(f"{field}: there is no user text to send", field=field)
    if len(text) > MAX_TEXT:
        raise InvalidRequest(f"{field}: the text is longer than {MAX_TEXT} characters", field=field)
    return text


def chat_text(messages: list[Any], opens: bool, system: Any = None, field: str = "messages") -> str:
    """What a chat-style call (Chat Completions, Messages, Responses with message items) sends:
    its newest user message. A call that `opens` a session sends it after the earlier turns it
    showed and its `system` prompt, framed by `with_history`; a session that goes on has them
    already. Refused (422) before anything is created when unusable."""
    earlier, newest = split_turns(messages)
    text = checked_text(newest, field)
    if not opens:
        return text
    system_text = input_text(system)
    if system_text.strip():
        earlier = [("system", system_text), *earlier]
    return checked_text(with_history(earlier, text), field)


def stamp_for(prefix: str, model: str | None, session: SessionHandle, clock: Clock) -> Stamp:
    return Stamp(new_id(prefix), int(clock.now().timestamp()), model or "karta", session.id)


async def adapter_turn(
    session: SessionHandle,
    text: str,
    projection: Projection | None,
    unary_body: Callable[[TurnOutcome], dict[str, Any]],
    on_start: Callable[[TurnHandle], Awaitable[None]] | None = None,
    *,
    created: bool,
) -> Response:
    """Every adapter call's recipe: run a turn on `session`; stream it through `projection`
    (None: unary), or wait for its end (or pause) and answer `unary_body(outcome)` — a turn
    that failed is a 422 in the SDK's error shape. A session `created` for this call whose turn
    is refused (402, 503) is ended: nothing is left behind; one whose turn runs keeps no warm
    harness after it."""
    try:
        # A call that opened its session continues no conversation: its harness closes when
        # the turn ends (a later call naming the session resumes it from the transcript).
        handle = await session.send(TurnRequest(text=text, ephemeral=created))
    except KartaError:
        if created:
            await session.end()
        raise
    if on_start is not None:
        await on_start(handle)
    stop = streaming.until_pause(handle.turn_id)
    headers = {SESSION_HEADER: session.id}
    if projection is not None:
        return streaming.response(
            streaming.frames(session, handle.after, projection, stop), headers
        )
    outcome = TurnOutcome.of(await streaming.collect(session, handle.after, stop))
    if outcome.error is not None:
        raise TurnFailed(outcome.error["message"], reason=outcome.error["code"])
    return JSONResponse(unary_body(outcome), headers=headers)
