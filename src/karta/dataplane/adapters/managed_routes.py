"""The Managed-Agents surface (spec §2.6.3): post user events, observe the session's log.

Mounted twice on the project family: at `…/managed-agents/sessions…` (Karta's documented
paths) and at `…/anthropic/v1/sessions…`, where the Anthropic SDK's `beta.sessions` looks with
`base_url = …/v1/projects/{ref}/anthropic`. A managed-agents session is a Karta session (same
id); its log is the projection in `managed_agents.py` of the session's event log.

Posting `user.message` starts a turn in the background (202); `user.tool_confirmation` decides
the pending approval; `user.interrupt` stops the running turn. Events arrive as Karta's flat
`{"type", "text", "request_id", "result"}` body or as the SDK's `{"events": [...]}`."""

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ValidationError

from karta import events as ev
from karta.dataplane import streaming
from karta.dataplane.adapters.anthropic_routes import anthropic_error
from karta.dataplane.adapters.common import encode_frame, input_text
from karta.dataplane.adapters.http import checked_text, route_class, start_turn
from karta.dataplane.adapters.managed_agents import (
    IDLE,
    USER_EVENTS,
    ManagedAgentsLog,
    karta_cursor,
    project_log,
)
from karta.dataplane.auth import Resolver, requiring
from karta.dataplane.schemas import CreateSession
from karta.errors import BadRequest, InputNotPending, KartaError
from karta.principal import READ, WRITE, Principal
from karta.runtime.approvals import APPROVE_ONCE, DENY
from karta.runtime.service import Runtime

MAX_EVENTS = 50
SSE_DOC = {"content": {"text/event-stream": {}}, "description": "SSE, one frame per event"}


def session_object(view: dict[str, Any], events: list[dict[str, Any]] | None) -> dict[str, Any]:
    if view["status"] == "ended":
        status = "terminated"
    elif view["turn_running"] and view["pending_input"] is None:
        status = "running"
    else:
        status = "idle"
    body = {
        "id": view["id"],
        "object": "session",
        "type": "session",
        "status": status,
        "agent": view["current_agent"],
        "metadata": view["metadata"],
        "pending_input": view["pending_input"],
        "created_at": view["created_at"],
        "updated_at": view["updated_at"],
    }
    if events is not None:
        body["events"] = events
    return body


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


def closes(item: dict[str, Any]) -> bool:
    """A stream ends when the session goes idle, not when it pauses for a decision."""
    stop = item.get("stop_reason") or {}
    return item["type"] == IDLE and stop.get("type") != "requires_action"


async def log_frames(
    runtime: Runtime, session_id: str, after: int, end_at: int, follow: bool
) -> AsyncIterator[bytes]:
    """Projected events with `seq > after`, then the live tail; without `follow`, the stream
    ends at the first idle at or past the log's end when it was opened."""
    start = karta_cursor(after)
    log = ManagedAgentsLog() if start == 0 else None
    async for event in runtime.events.subscribe(
        session_id, max(0, start - 1), runtime.settings.keepalive
    ):
        if event is None:
            yield ev.KEEPALIVE_FRAME
            continue
        if log is None:  # the event at the cursor is context: was the session idle after it?
            log = ManagedAgentsLog.after_context(event if event.seq == start else None)
            if event.seq == start:
                continue
        for item in log.feed(event):
            if item["seq"] <= after:
                continue
            yield encode_frame((item["type"], item), item["seq"])
            if not follow and closes(item) and (event.seq or 0) >= end_at:
                return


def _cursor(after: int | None, last_event_id: str | None) -> int:
    if after is not None:
        return after
    try:
        value = int(last_event_id) if last_event_id is not None else 0
    except ValueError:
        value = -1
    if value < 0:
        raise BadRequest("Last-Event-ID must be an event seq (a non-negative integer)")
    return value


async def apply(runtime: Runtime, caller: Principal, session_id: str, item: Any) -> None:
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
        await start_turn(runtime, caller, session_id, text)
    elif kind == "user.tool_confirmation":
        result = str(item.get("result") or "").lower()
        if result not in ("allow", "deny"):
            raise BadRequest("user.tool_confirmation needs result: allow or deny")
        request_id = item.get("request_id")
        if not request_id and str(item.get("tool_use_id") or "").startswith("req_"):
            request_id = item["tool_use_id"]  # the id named in requires_action's event_ids
        if not request_id:
            pending = (await runtime.get_session(caller, session_id))["pending_input"]
            if pending is None:
                raise InputNotPending("no approval is pending in this session")
            request_id = pending["request_id"]
        decision = APPROVE_ONCE if result == "allow" else DENY
        await runtime.decide(caller, session_id, str(request_id), decision)
    else:
        await runtime.interrupt(caller, session_id)


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
        view, _ = await request.app.state.runtime.create_session(caller, metadata)
        return JSONResponse(session_object(view, []), status_code=201)

    @api.get("/sessions/{session_id}", responses=declared(404))
    async def get_session(session_id: str, request: Request, caller: Reader) -> dict[str, Any]:
        """The session's state and its whole projected log."""
        runtime = request.app.state.runtime
        view = await runtime.get_session(caller, session_id)
        return session_object(view, project_log(await runtime.events.read(session_id)))

    @api.get("/sessions/{session_id}/events", responses=declared(404))
    async def list_events(session_id: str, request: Request, caller: Reader) -> dict[str, Any]:
        """The session's projected log."""
        runtime = request.app.state.runtime
        await runtime.get_session(caller, session_id)
        data = project_log(await runtime.events.read(session_id))
        return {"data": data, "has_more": False}

    @api.post(
        "/sessions/{session_id}/events", status_code=202, responses=declared(400, 402, 404, 409)
    )
    async def post_events(session_id: str, request: Request, caller: Writer) -> JSONResponse:
        """Post `user.message`, `user.tool_confirmation` or `user.interrupt` (one flat event, or
        `{"events": [...]}`, applied in order)."""
        runtime = request.app.state.runtime
        await runtime.get_session(caller, session_id)  # a foreign session is a 404 first
        body = await json_body(request)
        items = body.get("events") if "events" in body else [body]
        if not isinstance(items, list) or not items or len(items) > MAX_EVENTS:
            raise BadRequest(f"events must be a list of 1 to {MAX_EVENTS} events")
        for item in items:
            await apply(runtime, caller, session_id, item)
        return JSONResponse({"accepted": True}, status_code=202)

    @api.get(
        "/sessions/{session_id}/events/stream",
        response_class=StreamingResponse,
        responses={200: SSE_DOC, **declared(400, 404)},
    )
    async def stream_events(
        session_id: str,
        request: Request,
        caller: Reader,
        after: Annotated[
            int | None, Query(ge=0, description="replay events with seq > after")
        ] = None,
        follow: Annotated[bool, Query(description="keep tailing after the session idles")] = False,
        last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    ) -> StreamingResponse:
        """Replay the projected log after a cursor, then the live tail, until the session goes
        idle (`session.status_idle` other than `requires_action`)."""
        runtime = request.app.state.runtime
        await runtime.get_session(caller, session_id)
        cursor = _cursor(after, last_event_id)
        end_at = await runtime.events.last_seq(session_id)
        return StreamingResponse(
            log_frames(runtime, session_id, cursor, end_at, follow),
            media_type="text/event-stream",
            headers=streaming.SSE_HEADERS,
        )

    return api
