"""The data plane's internal API, called with a service token: by the control plane (who am I,
and the cache invalidation it pushes when a key is revoked, a budget changes, a release is
activated or rolled back, a project's env vars or embed keys change, or a provider key or model
setting changes), and by the other replicas (a session's turn, input decision, interrupt or end,
forwarded to this replica as the session's owner; it answers them, or the error the client gets,
as the public routes would). Its bodies and answers are the contract in
`karta.core.internal_api`. Guarded by `karta.core.internal_auth` and left out of the OpenAPI
document."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from karta.core import internal_api as api
from karta.core.internal_auth import require_service
from karta.dataplane.cluster.forward import principal_of
from karta.dataplane.runtime.handle import SessionHandle
from karta.dataplane.runtime.lifecycle import Decision
from karta.dataplane.runtime.turns import TurnRequest

router = APIRouter(dependencies=[Depends(require_service)], include_in_schema=False)


@router.get(api.DATA_WHOAMI)
async def whoami() -> api.ServicePrincipal:
    return api.ServicePrincipal(principal_kind="service")


@router.post(api.INVALIDATE)
async def invalidate(body: api.Invalidate, request: Request) -> api.Invalidated:
    evicted = request.app.state.auth.evict(body.organization_id)
    pointers, envs = request.app.state.releases.evict(body.organization_id)
    metering = request.app.state.metering
    return api.Invalidated(
        organization_id=body.organization_id,
        evicted=evicted,
        active_release_evicted=pointers,
        env_evicted=envs,
        embed_evicted=request.app.state.embed.evict(),
        model_access_evicted=request.app.state.model_access.evict(body.organization_id),
        budget_evicted=metering.evict(body.organization_id) if metering is not None else 0,
    )


async def _owned(request: Request, session_id: str, call: api.ForwardedCall) -> SessionHandle:
    runtime = request.app.state.runtime
    return await runtime.session(principal_of(call.caller), session_id, forwarded=True)


@router.post(api.OWNER_TURN)
async def owner_turn(session_id: str, body: api.ForwardedTurn, request: Request) -> api.TurnStarted:
    session = await _owned(request, session_id, body)
    handle = await session.send(TurnRequest(**body.model_dump(exclude={"caller"})))
    return api.TurnStarted(
        turn_id=handle.turn_id,
        after=handle.after,
        agent=handle.agent,
        user_message=handle.user_message,
    )


@router.post(api.OWNER_DECISION)
async def owner_decision(
    session_id: str, request_id: str, body: api.ForwardedDecision, request: Request
) -> api.LogPosition:
    session = await _owned(request, session_id, body)
    turn_id, after = await session.decide(request_id, Decision(body.decision))
    return api.LogPosition(turn_id=turn_id, after=after)


@router.post(api.OWNER_INTERRUPT)
async def owner_interrupt(
    session_id: str, body: api.ForwardedCall, request: Request
) -> api.LogPosition:
    turn_id, after = await (await _owned(request, session_id, body)).interrupt()
    return api.LogPosition(turn_id=turn_id, after=after)


@router.post(api.OWNER_END)
async def owner_end(session_id: str, body: api.ForwardedCall, request: Request) -> api.SessionEnded:
    await (await _owned(request, session_id, body)).end()
    return api.SessionEnded(session_id=session_id)
