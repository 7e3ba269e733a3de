"""Session handles: create (or resume), list, fetch, end, interrupt, participants, the
transcript; and the app's agents.

`session_routes(resolve)` builds the routes for one route family: the flat `/v1/sessions…`
routes and the project family `/v1/projects/{ref}/sessions…` share these handlers and differ
only in how the caller is resolved (`dataplane/auth.py`).
"""

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response

from karta.core.errors import BadRequest, InvalidCursor
from karta.core.http_errors import error_responses
from karta.core.turn_fold import PART_SEPARATOR
from karta.dataplane.auth import Resolver, requiring
from karta.dataplane.principal import READ, WRITE, Principal
from karta.dataplane.runtime.participants import ParticipantSpec, participant_view
from karta.dataplane.runtime.queries import SessionFilter
from karta.dataplane.schemas import (
    CreateSession,
    InterruptOut,
    ParticipantIn,
    ParticipantOut,
    SessionOut,
    SessionPage,
    TranscriptMessage,
    TranscriptPage,
)

METADATA_PREFIX = "metadata."
MAX_METADATA_FILTERS = 10


def metadata_filters(request: Request) -> tuple[tuple[str, str], ...]:
    """`?metadata.<key>=<value>` query parameters, as (key, value) pairs."""
    pairs = tuple(
        (name[len(METADATA_PREFIX) :], value)
        for name, value in request.query_params.multi_items()
        if name.startswith(METADATA_PREFIX)
    )
    if len(pairs) > MAX_METADATA_FILTERS or any(not key for key, _ in pairs):
        raise BadRequest(f"at most {MAX_METADATA_FILTERS} metadata.<key>=<value> filters")
    return pairs


def session_routes(resolve: Resolver, *, errors: tuple[int, ...]) -> APIRouter:
    """`errors`: the statuses the family's caller resolution adds to every route."""
    router = APIRouter(tags=["sessions"])
    Reader = Annotated[Principal, Depends(requiring(READ, resolve))]
    Writer = Annotated[Principal, Depends(requiring(WRITE, resolve))]

    @router.get("/app", responses=error_responses(*errors))
    async def describe_app(request: Request, caller: Reader) -> dict[str, Any]:
        """The app a new session on this route family runs: the served folder on the flat
        routes, the project's active release on a project's."""
        apps = request.app.state.runtime.apps
        pin = await apps.pin(caller)
        app = await apps.app(pin, caller.organization_id, caller.project_slug)
        return {
            "name": app.name,
            "harness": app.harness,
            "agents": app.public_agents(),
            "skills": list(app.skills),
        }

    @router.post(
        "/sessions",
        response_model=SessionOut,
        status_code=201,
        responses={
            200: {"model": SessionOut, "description": "resumed an existing session"},
            **error_responses(*errors, 404, 422),
        },
    )
    async def create_session(
        body: CreateSession, request: Request, response: Response, caller: Writer
    ) -> SessionOut:
        handle, created = await request.app.state.runtime.create_session(
            caller, body.metadata, body.session_id, [participant_spec(p) for p in body.participants]
        )
        response.status_code = 201 if created else 200
        return await handle.view(reread=not created)

    @router.get(
        "/sessions", response_model=SessionPage, responses=error_responses(*errors, 400, 404, 422)
    )
    async def list_sessions(
        request: Request,
        caller: Reader,
        limit: Annotated[int, Query(ge=1, le=100, description="sessions per page")] = 20,
        after: Annotated[
            str | None, Query(max_length=64, description="the last session id of the page before")
        ] = None,
        status: Annotated[Literal["active", "ended"] | None, Query()] = None,
        active: Annotated[
            bool | None, Query(description="true: a turn is running or awaiting input")
        ] = None,
        agent: Annotated[str | None, Query(max_length=200, description="the current agent")] = None,
    ) -> SessionPage:
        """The caller's sessions, newest first. Filter by `metadata.<key>=<value>` (string
        values, exact), `status`, `active` and `agent`; a session token sees only its own end
        user's sessions."""
        where = SessionFilter(
            organization_id=None,
            status=status,
            agent=agent,
            active=active,
            metadata=metadata_filters(request),
        )
        handles, more = await request.app.state.runtime.list_sessions(caller, where, limit, after)
        views = [await h.view(reread=False) for h in handles]  # the rows were just read
        return SessionPage(
            data=views, has_more=more, next_cursor=views[-1].id if more and views else None
        )

    @router.get(
        "/sessions/{session_id}", response_model=SessionOut, responses=error_responses(*errors, 404)
    )
    async def get_session(session_id: str, request: Request, caller: Reader) -> SessionOut:
        return await (await request.app.state.runtime.session(caller, session_id)).view()

    @router.delete(
        "/sessions/{session_id}", status_code=204, responses=error_responses(*errors, 404)
    )
    async def end_session(session_id: str, request: Request, caller: Writer) -> Response:
        await (await request.app.state.runtime.session(caller, session_id)).end()
        return Response(status_code=204)

    @router.post(
        "/sessions/{session_id}/interrupt",
        response_model=InterruptOut,
        responses=error_responses(*errors, 404, 409),
    )
    async def interrupt(session_id: str, request: Request, caller: Writer) -> InterruptOut:
        """Stop the running turn: it ends `cancelled` (its stream ends with `done`), a pending
        approval is aborted, usage so far is metered and the session takes the next message.
        409 `no_turn_running` when nothing runs."""
        handle = await request.app.state.runtime.session(caller, session_id)
        turn_id, after = await handle.interrupt()
        events = await handle.read(after)
        return InterruptOut(
            turn_id=turn_id,
            status="cancelled",
            events=[e.to_dict() for e in events if e.turn_id == turn_id],
            session=await handle.view(),
        )

    @router.post(
        "/sessions/{session_id}/participants",
        response_model=ParticipantOut,
        status_code=201,
        responses={
            200: {"model": ParticipantOut, "description": "the participant was there already"},
            **error_responses(*errors, 404, 409, 422),
        },
    )
    async def add_participant(
        session_id: str, body: ParticipantIn, request: Request, response: Response, caller: Writer
    ) -> ParticipantOut:
        """Add a human or AI participant (a session token: only its own end user). One that
        is there already is answered as it is (200), back in the session if it had left."""
        handle = await request.app.state.runtime.session(caller, session_id)
        row, created = await handle.add_participant(participant_spec(body))
        response.status_code = 201 if created else 200
        return ParticipantOut.model_validate(participant_view(row))

    @router.delete(
        "/sessions/{session_id}/participants/{participant_id}",
        response_model=ParticipantOut,
        responses=error_responses(*errors, 404),
    )
    async def remove_participant(
        session_id: str, participant_id: str, request: Request, caller: Writer
    ) -> ParticipantOut:
        """Mark a participant as gone: it stays listed with `left_at`, gets no more
        deliveries, and sending as it again brings it back."""
        handle = await request.app.state.runtime.session(caller, session_id)
        row = await handle.remove_participant(participant_id)
        return ParticipantOut.model_validate(participant_view(row))

    @router.get(
        "/sessions/{session_id}/messages",
        response_model=TranscriptPage,
        responses=error_responses(*errors, 404, 422),
    )
    async def transcript(
        session_id: str,
        request: Request,
        caller: Reader,
        limit: Annotated[int, Query(ge=1, le=1000, description="messages per page")] = 100,
        after: Annotated[
            str | None, Query(max_length=200, description="the last message id of the page before")
        ] = None,
    ) -> TranscriptPage:
        """The conversation, oldest first, read from the harness's own transcript (Claude
        Code's session file, OpenCode's API): user and assistant messages with their text and
        tool parts."""
        handle = await request.app.state.runtime.session(caller, session_id)
        return page_of(await handle.transcript(), limit, after)

    return router


def participant_spec(body: ParticipantIn) -> ParticipantSpec:
    assert body.id is not None, "ParticipantIn fills the id in"
    return ParticipantSpec(
        body.id, body.type, body.display_name, body.gateway_url, body.session_id, body.project
    )


def page_of(messages: list[dict[str, Any]], limit: int, after: str | None) -> TranscriptPage:
    """A page of `limit` transcript messages after the message `after` (422 if unknown)."""
    start = 0
    if after is not None:
        ids = [m["id"] for m in messages]
        if after not in ids:
            raise InvalidCursor(f"no message {after!r} in this session's transcript")
        start = ids.index(after) + 1
    page = messages[start : start + limit]
    more = start + limit < len(messages)
    data = [
        TranscriptMessage.model_validate(
            {
                **m,
                "text": PART_SEPARATOR.join(
                    p["text"] for p in m["parts"] if p.get("type") == "text" and p.get("text")
                ),
            }
        )
        for m in page
    ]
    return TranscriptPage(data=data, has_more=more, next_cursor=data[-1].id if more else None)
