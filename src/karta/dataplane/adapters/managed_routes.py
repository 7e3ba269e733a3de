"""The Managed-Agents surface (spec §2.6.3): post user events, observe the session's log.

Mounted twice on the project family: at `…/managed-agents/sessions…` (Karta's documented
paths) and at `…/anthropic/v1/sessions…`, where the Anthropic SDK's `beta.sessions` looks with
`base_url = …/v1/projects/{ref}/anthropic`. A managed-agents session is a Karta session (same
id); its log is the projection in `managed_agents.py` of the session's event log.

Sessions are created, listed (newest first, pages linked by `next_page` as the SDK's
`SyncBidirectionalPageCursor` reads them), retrieved and deleted (which ends the Karta session).
Posting `user.message` starts a turn in the background (202); `user.tool_confirmation` decides
the pending approval; `user.interrupt` stops the running turn. Events arrive as Karta's flat
`{"type", "text", "request_id", "result"}` body or as the SDK's `{"events": [...]}`. The log
is listed in pages (`next_page`, as `SyncPageCursor` reads it) or streamed, with previews of
each `agent.message` on request (`event_deltas`)."""

import contextlib
import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ValidationError

from karta.core import events as ev
from karta.core import sse
from karta.core.errors import BadRequest, InputNotPending, InvalidCursor, KartaError, NoTurnRunning
from karta.core.events import Event
from karta.dataplane import streaming
from karta.dataplane.adapters.anthropic_routes import anthropic_error
from karta.dataplane.adapters.common import input_text
from karta.dataplane.adapters.http import checked_text, route_class
from karta.dataplane.adapters.managed_agents import (
    EVENT_ID_PREFIX,
    MESSAGE,
    USER_EVENTS,
    ManagedStream,
    Previewable,
    karta_cursor,
    project_log,
)
from karta.dataplane.auth import Resolver, requiring
from karta.dataplane.principal import READ, WRITE, Principal
from karta.dataplane.runtime.handle import SessionHandle
from karta.dataplane.runtime.lifecycle import Decision
from karta.dataplane.runtime.queries import SessionFilter
from karta.dataplane.runtime.turns import TurnRequest
from karta.dataplane.schemas import CreateSession, SessionOut

MAX_EVENTS = 50
# The Anthropic SDK sends a list query parameter as `name[]=a&name[]=b`; `name=a&name=b` works too.
SDK_LIST = "the same, as the Anthropic SDK spells it"
SSE_DOC = {"content": {"text/event-stream": {}}, "description": "SSE, one frame per event"}


def session_object(view: SessionOut, events: list[dict[str, Any]] | None) -> dict[str, Any]:
    if view.status == "ended":
        status = "terminated"
    elif view.turn_running and view.pending_input is None:
        status = "running"
    else:
        status = "idle"
    body: dict[str, Any] = {
        "id": view.id,
        "object": "session",
        "type": "session",
        "status": status,
        "agent": view.current_agent,
        "metadata": view.metadata,
        "pending_input": view.pending_input.model_dump() if view.pending_input else None,
        "created_at": view.created_at,
        "updated_at": view.updated_at,
    }
    if events is not None:
        body["events"] = events
    return body


def refuse_unknown(request: Request, *known: str) -> None:
    """A list call with a filter of Anthropic's that Karta does not implement is a 400, never
    answered as if unfiltered."""
    unknown = sorted(set(request.query_params) - set(known))
    if unknown:
        raise BadRequest(f"unsupported query parameters: {', '.join(unknown)}")


def log_cursor(page: str | None) -> int:
    """The projected seq after which a page of the log starts: `page` is the id of the last
    event of the page before (its `next_page`)."""
    if page is None:
        return 0
    digits = page.removeprefix(EVENT_ID_PREFIX)
    if digits == page or not (digits.isascii() and digits.isdigit()):
        raise InvalidCursor(f"page: {page!r} is not a next_page of this log")
    return int(digits)


async def json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise BadRequest("the body is not JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


async def apply(session: SessionHandle, item: Any) -> None:
    if not isinstance(item, dict):
        raise BadRequest("each event must be a JSON object")
    kind = item.get("type")
    if kind not in USER_EVENTS:
        raise BadRequest(f"unsupported event type {kind!r}: use one of {', '.join(USER_EVENTS)}")
    if kind == "user.message":
        text = item.get("text")
        text = text if isinstance(text, str) else input_text(item.get("content"))
        try:
            text = checked_text(text, "text")
        except KartaError as exc:
            raise BadRequest(exc.message) from None
        await session.send(TurnRequest(text=text))
    elif kind == "user.tool_confirmation":
        result = str(item.get("result") or "").lower()
        if result not in ("allow", "deny"):
            raise BadRequest("user.tool_confirmation needs result: allow or deny")
        request_id = item.get("request_id")
        if not request_id and str(item.get("tool_use_id") or "").startswith("req_"):
            request_id = item["tool_use_id"]  # the id named in requires_action's event_ids
        if not request_id:
            pending = (await session.view()).pending_input
            if pending is None:
                raise InputNotPending("no approval is pending in this session")
            request_id = pending.request_id
        decision = Decision.APPROVE_ONCE if result == "allow" else Decision.DENY
        await session.decide(str(request_id), decision)
    else:
        with contextlib.suppress(NoTurnRunning):  # an idle session is already stopped
            await session.interrupt()


def router(resolve: Resolver, *, errors: tuple[int, ...], base: str) -> APIRouter:
    api = APIRouter(prefix=base, route_class=route_class(anthropic_error), tags=["adapters"])
    Reader = Annotated[Principal, Depends(requiring(READ, resolve))]
    Writer = Annotated[Principal, Depends(requiring(WRITE, resolve))]

    def declared(*statuses: int) -> dict[int | str, dict[str, Any]]:
        return {s: {"description": "an Anthropic error body"} for s in sorted({*errors, *statuses})}

    @api.post("/sessions", status_code=201, responses=declared(422))
    async def create_session(request: Request, caller: Writer) -> JSONResponse:
        """Create a session (optional body `{"metadata": {…}}`; the SDK's other fields are
        accepted, unused)."""
        body = await json_body(request)
        try:
            metadata = CreateSession(metadata=body.get("metadata") or {}).metadata
        except ValidationError as exc:
            raise BadRequest(f"metadata: {exc.errors()[0]['msg']}") from None
        session, _ = await request.app.state.runtime.create_session(caller, metadata)
        return JSONResponse(session_object(await session.view(reread=False), []), status_code=201)

    @api.get("/sessions", responses=declared(400, 422))
    async def list_sessions(
        request: Request,
        caller: Reader,
        limit: Annotated[int, Query(ge=1, le=100, description="sessions per page")] = 20,
        page: Annotated[
            str | None, Query(max_length=64, description="the `next_page` of the page before")
        ] = None,
        order: Annotated[Literal["desc"], Query(description="newest first, the only order")] = (
            "desc"
        ),
        include_archived: Annotated[
            bool, Query(description="accepted; Karta archives no session")
        ] = False,
    ) -> dict[str, Any]:
        """The caller's sessions, newest first (without their logs)."""
        refuse_unknown(request, "limit", "page", "order", "include_archived")
        handles, more = await request.app.state.runtime.list_sessions(
            caller, SessionFilter(organization_id=None), limit, page
        )
        data = [session_object(await handle.view(reread=False), None) for handle in handles]
        return {
            "data": data,
            "next_page": data[-1]["id"] if more and data else None,
            "prev_page": None,
        }

    @api.get("/sessions/{session_id}", responses=declared(404))
    async def get_session(session_id: str, request: Request, caller: Reader) -> dict[str, Any]:
        """The session's state and its whole projected log."""
        session = await request.app.state.runtime.session(caller, session_id)
        return session_object(await session.view(), project_log(await session.read()))

    @api.delete("/sessions/{session_id}", responses=declared(404))
    async def delete_session(session_id: str, request: Request, caller: Writer) -> dict[str, Any]:
        """End the session: its running turn is stopped, its workspace removed; it stays
        readable (`terminated`). Deleting an ended session answers the same."""
        session = await request.app.state.runtime.session(caller, session_id)
        await session.end()
        return {"id": session.id, "type": "session_deleted"}

    @api.get("/sessions/{session_id}/events", responses=declared(400, 404, 422))
    async def list_events(
        session_id: str,
        request: Request,
        caller: Reader,
        limit: Annotated[int, Query(ge=1, le=1000, description="events per page")] = 100,
        page: Annotated[
            str | None, Query(max_length=64, description="the `next_page` of the page before")
        ] = None,
        order: Annotated[Literal["asc"], Query(description="oldest first, the only order")] = (
            "asc"
        ),
        types: Annotated[list[str] | None, Query(description="only events of these types")] = None,
        types_sdk: Annotated[list[str] | None, Query(alias="types[]", description=SDK_LIST)] = None,
    ) -> dict[str, Any]:
        """The session's projected log, oldest first, in pages."""
        refuse_unknown(request, "limit", "page", "order", "types", "types[]")
        session = await request.app.state.runtime.session(caller, session_id)
        after = log_cursor(page)
        # From the Karta event at the cursor: the projection reads it as context.
        log = project_log(await session.read(max(0, karta_cursor(after) - 1)), after)
        only = {*(types or ()), *(types_sdk or ())}
        wanted = [e for e in log if not only or e["type"] in only]
        data = wanted[:limit]
        return {"data": data, "next_page": data[-1]["id"] if len(wanted) > limit else None}

    @api.post(
        "/sessions/{session_id}/events", status_code=202, responses=declared(400, 402, 404, 409)
    )
    async def post_events(session_id: str, request: Request, caller: Writer) -> JSONResponse:
        """Post `user.message`, `user.tool_confirmation` or `user.interrupt` (one flat event, or
        `{"events": [...]}`, applied in order)."""
        session = await request.app.state.runtime.session(caller, session_id)  # 404 first
        body = await json_body(request)
        items = body.get("events") if "events" in body else [body]
        if not isinstance(items, list) or not items or len(items) > MAX_EVENTS:
            raise BadRequest(f"events must be a list of 1 to {MAX_EVENTS} events")
        for item in items:
            await apply(session, item)
        return JSONResponse({"accepted": True}, status_code=202)

    @api.get(
        "/sessions/{session_id}/events/stream",
        response_class=StreamingResponse,
        responses={200: SSE_DOC, **declared(400, 404, 422)},
    )
    async def stream_events(
        session_id: str,
        request: Request,
        caller: Reader,
        after: Annotated[
            int | None, Query(ge=0, description="replay events with seq > after")
        ] = None,
        follow: Annotated[bool, Query(description="keep tailing after the session idles")] = False,
        event_deltas: Annotated[
            list[Previewable] | None,
            Query(description="also send previews (`event_start`, `event_delta`) of these"),
        ] = None,
        event_deltas_sdk: Annotated[
            list[Previewable] | None, Query(alias="event_deltas[]", description=SDK_LIST)
        ] = None,
        last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    ) -> StreamingResponse:
        """Replay the projected log after a cursor, then the live tail, until the session goes
        idle (`session.status_idle` other than `requires_action`). With
        `event_deltas=agent.message`, each message is previewed chunk by chunk before it."""
        session = await request.app.state.runtime.session(caller, session_id)
        previews = MESSAGE in {*(event_deltas or ()), *(event_deltas_sdk or ())}
        projection = ManagedStream(sse.cursor(after, last_event_id), previews=previews)
        end_at = await session.last_seq()

        def closes(event: Event) -> bool:
            """Ends at the first idle (a turn's end) at or past the log's end when opened, that
            the client has not seen (not the context event at the cursor)."""
            seq = event.seq or 0
            return not follow and event.type == ev.DONE and seq >= end_at and projection.sent(seq)

        body = streaming.frames(session, projection.replay_from, projection, closes)
        return streaming.response(body)

    return api
