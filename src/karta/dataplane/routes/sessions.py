"""Session handles: create (or resume), fetch, end; and the app's agents."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from karta.dataplane.auth import principal
from karta.dataplane.errors import error_responses
from karta.dataplane.schemas import CreateSession, SessionOut
from karta.principal import Principal

router = APIRouter(prefix="/v1", tags=["sessions"])
Caller = Annotated[Principal, Depends(principal)]


@router.get("/app", responses=error_responses(401))
async def describe_app(request: Request, _: Caller) -> dict[str, Any]:
    app = request.app.state.runtime.app
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
        **error_responses(401, 404, 422),
    },
)
async def create_session(
    body: CreateSession, request: Request, response: Response, caller: Caller
) -> dict[str, Any]:
    view, created = await request.app.state.runtime.create_session(
        caller, body.metadata, body.session_id
    )
    response.status_code = 201 if created else 200
    return view


@router.get(
    "/sessions/{session_id}", response_model=SessionOut, responses=error_responses(401, 404)
)
async def get_session(session_id: str, request: Request, caller: Caller) -> dict[str, Any]:
    return await request.app.state.runtime.get_session(caller, session_id)


@router.delete("/sessions/{session_id}", status_code=204, responses=error_responses(401, 404))
async def end_session(session_id: str, request: Request, caller: Caller) -> Response:
    await request.app.state.runtime.end_session(caller, session_id)
    return Response(status_code=204)
