"""Sending messages, deciding approvals and reading the event stream of a session.

`turn_routes(resolve)` builds them for one route family (see `routes/sessions.py`)."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse

from karta import events as ev
from karta.dataplane import streaming
from karta.dataplane.auth import Resolver, requiring
from karta.dataplane.schemas import Decide, DecisionOut, SendMessage, TurnOut
from karta.errors import BadRequest
from karta.events import Event, TurnAccumulator
from karta.http_errors import error_responses
from karta.ids import new_id
from karta.principal import READ, WRITE, Principal
from karta.runtime.service import TurnHandle, TurnRequest
from karta.store.models import utcnow

SSE_DOC = {"content": {"text/event-stream": {}}, "description": "SSE, one frame per event"}


def unary_turn(handle: TurnHandle, events: list[Event]) -> dict[str, Any]:
    acc = TurnAccumulator().extend(events)
    last = events[-1] if events else None
    paused = last is not None and last.type == ev.INPUT_REQUIRED
    assistant = {
        "id": acc.message_id or new_id("msg"),
        "role": "assistant",
        "text": acc.text,
        "agent": handle.agent,
        "parts": list(acc.parts.values()),
        "timestamp": utcnow().isoformat(),
    }
    return {
        "text": acc.text,
        "session_id": handle.session_id,
        "turn_id": handle.turn_id,
        "agent": handle.agent,
        "status": "paused" if paused else (acc.status or "failed"),
        "messages": [handle.user_message, assistant],
        "usage": acc.usage,
        "errors": acc.errors,
        "pending_input": acc.pending_input if paused else None,
    }


def _cursor(after: int | None, last_event_id: str | None) -> int:
    if after is not None:
        return after
    if last_event_id is None:
        return 0
    try:
        value = int(last_event_id)
    except ValueError:
        raise BadRequest("Last-Event-ID must be an event seq (a non-negative integer)") from None
    if value < 0:
        raise BadRequest("Last-Event-ID must be an event seq (a non-negative integer)")
    return value


def turn_routes(resolve: Resolver, *, errors: tuple[int, ...]) -> APIRouter:
    """`errors`: the statuses the family's caller resolution adds to every route."""
    router = APIRouter(prefix="/sessions/{session_id}", tags=["turns"])
    Reader = Annotated[Principal, Depends(requiring(READ, resolve))]
    Writer = Annotated[Principal, Depends(requiring(WRITE, resolve))]

    @router.post(
        "/messages",
        response_model=TurnOut,
        responses={200: SSE_DOC, **error_responses(*errors, 400, 402, 404, 409, 422)},
    )
    async def send_message(
        session_id: str, body: SendMessage, request: Request, caller: Writer
    ) -> Any:
        runtime = request.app.state.runtime
        handle = await runtime.start_turn(
            caller,
            session_id,
            TurnRequest(
                text=body.text,
                agent=body.agent,
                participant_name=body.participant_name,
                participant_type=body.participant_type,
                thinking=body.thinking,
            ),
        )
        if body.stream:
            return streaming.sse_response(
                runtime, session_id, handle.after, streaming.until_done(handle.turn_id)
            )
        events = await streaming.collect(
            runtime, session_id, handle.after, streaming.until_pause(handle.turn_id)
        )
        return unary_turn(handle, events)

    @router.put(
        "/inputs/{request_id}",
        response_model=DecisionOut,
        responses=error_responses(*errors, 404, 409, 422),
    )
    async def decide(
        session_id: str, request_id: str, body: Decide, request: Request, caller: Writer
    ) -> dict[str, Any]:
        runtime = request.app.state.runtime
        turn_id, after = await runtime.decide(caller, session_id, request_id, body.decision)
        events = await streaming.collect(runtime, session_id, after, streaming.until_pause(turn_id))
        return {
            "events": [e.to_dict() for e in events],
            "session": await runtime.get_session(caller, session_id),
        }

    @router.get(
        "/events",
        response_class=StreamingResponse,
        responses={200: SSE_DOC, **error_responses(*errors, 400, 404, 422)},
    )
    async def events(
        session_id: str,
        request: Request,
        caller: Reader,
        after: Annotated[
            int | None, Query(ge=0, description="replay events with seq > after")
        ] = None,
        follow: Annotated[bool, Query(description="keep tailing after the current turn")] = False,
        last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    ) -> StreamingResponse:
        """Replay the session's events after a cursor, then the live tail of the running turn
        (or, with `follow`, of every later turn)."""
        runtime = request.app.state.runtime
        await runtime.get_session(caller, session_id)
        cursor = _cursor(after, last_event_id)
        turn = runtime.running_turn(session_id)
        if follow:
            stop = None
        elif turn is not None:
            stop = streaming.until_done(turn)
        else:
            last = await runtime.events.last_seq(session_id)
            stop = streaming.at_seq(last)
            if cursor >= last:
                return streaming.empty_sse()
        return streaming.sse_response(runtime, session_id, cursor, stop)

    return router
