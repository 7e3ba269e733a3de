"""Session handles: create (or resume), fetch, end; and the app's agents.

`session_routes(resolve)` builds the routes for one route family: the flat `/v1/sessions…`
routes and the project family `/v1/projects/{ref}/sessions…` share these handlers and differ
only in how the caller is resolved (`dataplane/auth.py`).
"""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from karta.dataplane.auth import Resolver, flat_principal, requiring
from karta.dataplane.schemas import CreateSession, SessionOut
from karta.http_errors import error_responses
from karta.principal import READ, WRITE, Principal

app_router = APIRouter(prefix="/v1", tags=["sessions"])


@app_router.get("/app", responses=error_responses(401, 503))
async def describe_app(
    request: Request, _: Annotated[Principal, Depends(requiring(READ, flat_principal))]
) -> dict[str, Any]:
    app = request.app.state.runtime.app
    return {
        "name": app.name,
        "harness": app.harness,
        "agents": app.public_agents(),
        "skills": list(app.skills),
    }


def session_routes(resolve: Resolver, *, errors: tuple[int, ...]) -> APIRouter:
    """`errors`: the statuses the family's caller resolution adds to every route."""
    router = APIRouter(tags=["sessions"])
    Reader = Annotated[Principal, Depends(requiring(READ, resolve))]
    Writer = Annotated[Principal, Depends(requiring(WRITE, resolve))]

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
    ) -> dict[str, Any]:
        view, created = await request.app.state.runtime.create_session(
            caller, body.metadata, body.session_id
        )
        response.status_code = 201 if created else 200
        return view

    @router.get(
        "/sessions/{session_id}", response_model=SessionOut, responses=error_responses(*errors, 404)
    )
    async def get_session(session_id: str, request: Request, caller: Reader) -> dict[str, Any]:
        return await request.app.state.runtime.get_session(caller, session_id)

    @router.delete(
        "/sessions/{session_id}", status_code=204, responses=error_responses(*errors, 404)
    )
    async def end_session(session_id: str, request: Request, caller: Writer) -> Response:
        await request.app.state.runtime.end_session(caller, session_id)
        return Response(status_code=204)

    return router
