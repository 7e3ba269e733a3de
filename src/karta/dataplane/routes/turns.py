"""Sending messages, deciding approvals and reading the event stream of a session.

`turn_routes(resolve)` builds them for one route family (see `routes/sessions.py`)."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse

from karta.core import sse
from karta.core.errors import ByokKeyRejected
from karta.core.events import Event
from karta.core.http_errors import error_responses
from karta.core.ids import new_id
from karta.core.turn_fold import TurnOutcome
from karta.dataplane import streaming
from karta.dataplane.auth import Resolver, requiring
from karta.dataplane.principal import READ, WRITE, Principal
from karta.dataplane.runtime.lifecycle import Decision
from karta.dataplane.runtime.turns import TurnHandle, TurnRequest
from karta.dataplane.schemas import Decide, DecisionOut, SendMessage, TurnOut

SSE_DOC = {"content": {"text/event-stream": {}}, "description": "SSE, one frame per event"}


def unary_turn(handle: TurnHandle, events: list[Event], timestamp: str) -> TurnOut:
    """The turn's answer; a turn the provider refused the organization's own key for is a 422
    `byok_key_rejected` (a stream says it with an `error` event)."""
    outcome = TurnOutcome.of(events)
    if outcome.error is not None and outcome.error["code"] == ByokKeyRejected.code:
        raise ByokKeyRejected(
            outcome.error["message"], session_id=handle.session_id, turn_id=handle.turn_id
        )
    assistant = {
        "id": outcome.message_id or new_id("msg"),
        "role": "assistant",
        "text": outcome.text,
        "agent": handle.agent,
        "parts": list(outcome.parts.values()),
        "timestamp": timestamp,
    }
    return TurnOut.model_validate(
        {
            "text": outcome.text,
            "session_id": handle.session_id,
            "turn_id": handle.turn_id,
            "agent": handle.agent,
            "status": outcome.public_status,
            "messages": [handle.user_message, assistant],
            "usage": outcome.usage,
            "errors": outcome.errors,
            "pending_input": outcome.pending_input,
        }
    )


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
        session = await runtime.session(caller, session_id)
        handle = await session.send(
            TurnRequest(
                text=body.text,
                agent=body.agent,
                participant_name=body.participant_name,
                participant_type=body.participant_type,
                thinking=body.thinking,
            )
        )
        if body.stream:
            stop = streaming.until_done(handle.turn_id)
            # Where the turn's events start: a client whose stream drops before the first
            # event resumes from there (`GET …/events` with this as `Last-Event-ID`).
            where = {"Karta-Turn-Id": handle.turn_id, "Karta-Events-After": str(handle.after)}
            return streaming.response(
                streaming.frames(session, handle.after, streaming.Native(), stop), where
            )
        events = await streaming.collect(
            session, handle.after, streaming.until_pause(handle.turn_id)
        )
        return unary_turn(handle, events, runtime.clock.now().isoformat())

    @router.put(
        "/inputs/{request_id}",
        response_model=DecisionOut,
        responses=error_responses(*errors, 404, 409, 422),
    )
    async def decide(
        session_id: str, request_id: str, body: Decide, request: Request, caller: Writer
    ) -> DecisionOut:
        session = await request.app.state.runtime.session(caller, session_id)
        turn_id, after = await session.decide(request_id, Decision(body.decision))
        events = await streaming.collect(session, after, streaming.until_pause(turn_id))
        return DecisionOut(events=[e.to_dict() for e in events], session=await session.view())

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
            int | None, Query(ge=0, le=2**62, description="replay events with seq > after")
        ] = None,
        follow: Annotated[bool, Query(description="keep tailing after the current turn")] = False,
        last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    ) -> StreamingResponse:
        """Replay the session's events after a cursor, then the live tail of the running turn
        (or, with `follow`, of every later turn)."""
        session = await request.app.state.runtime.session(caller, session_id)
        cursor = sse.cursor(after, last_event_id)
        return await streaming.replay(session, cursor, follow, streaming.Native())

    return router
