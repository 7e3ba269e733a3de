"""The gateway's routes: participants submit events, remote gateways hand over deliveries, and
organizations say whom they exchange events with (docs/gateway.md)."""

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request

from karta.core.http_errors import error_responses
from karta.core.internal_api import MAX_ID
from karta.dataplane.auth import flat_principal, requiring
from karta.dataplane.principal import ADMIN, READ, WRITE, Principal
from karta.dataplane.schemas import GatewayAccepted, GatewayDelivery, GatewayTrustOut, SubmitEvent

router = APIRouter(prefix="/v1/gateway", tags=["gateway"])
Reader = Annotated[Principal, Depends(requiring(READ, flat_principal))]
Writer = Annotated[Principal, Depends(requiring(WRITE, flat_principal))]
Admin = Annotated[Principal, Depends(requiring(ADMIN, flat_principal))]
SERVICE = Principal(kind="service", organization_id=None)
OrgId = Annotated[int, Path(ge=1, le=MAX_ID)]  # ids are 32-bit columns


async def gateway_caller(request: Request) -> Principal:
    """Another instance's gateway (the service credential), or an organization's API key
    with the `write` scope."""
    if request.app.state.internal_access.is_service(request):
        return SERVICE
    principal = await flat_principal(request)
    principal.require(WRITE)
    return principal


@router.post(
    "/events",
    response_model=GatewayAccepted,
    responses=error_responses(401, 403, 404, 409, 422, 503),
)
async def submit_event(body: SubmitEvent, request: Request, caller: Writer) -> GatewayAccepted:
    """A participant sends a message in a session (none: a new one): to the session's agent,
    which answers with a turn, or to `recipient_id`, a participant of the session (404 when
    there is none). A replayed `event_id` does nothing and gets the first answer."""
    return await request.app.state.gateway.submit(caller, body)


@router.post(
    "/deliveries",
    response_model=GatewayAccepted,
    responses=error_responses(401, 403, 404, 409, 422, 503),
)
async def deliver(
    body: GatewayDelivery,
    request: Request,
    caller: Annotated[Principal, Depends(gateway_caller)],
) -> GatewayAccepted:
    """A remote gateway hands over an event for a participant living on this instance: one
    of the session's participants (recorded in the session), or its agent (a turn whose
    answer goes back). 404 when the recipient is unknown or its organization may not be
    reached."""
    return await request.app.state.gateway.receive(caller, body)


@router.get("/trust", response_model=GatewayTrustOut, responses=error_responses(401, 403))
async def trusted(request: Request, caller: Reader) -> GatewayTrustOut:
    """The organizations yours exchanges gateway events with."""
    return await _trust_view(request, caller)


@router.put(
    "/trust/{organization_id}",
    response_model=GatewayTrustOut,
    responses=error_responses(401, 403, 422),
)
async def trust(organization_id: OrgId, request: Request, caller: Admin) -> GatewayTrustOut:
    """Allow gateway events between your organization and another (admin). Events cross
    only once the other organization allowed yours too."""
    if caller.organization_id is not None:
        await request.app.state.gateway.trust(caller.organization_id, organization_id)
    return await _trust_view(request, caller)


@router.delete(
    "/trust/{organization_id}",
    response_model=GatewayTrustOut,
    responses=error_responses(401, 403, 422),
)
async def distrust(organization_id: OrgId, request: Request, caller: Admin) -> GatewayTrustOut:
    """Stop exchanging gateway events with another organization (admin)."""
    if caller.organization_id is not None:
        await request.app.state.gateway.distrust(caller.organization_id, organization_id)
    return await _trust_view(request, caller)


async def _trust_view(request: Request, caller: Principal) -> GatewayTrustOut:
    organization_id = caller.organization_id or 0
    trusts = await request.app.state.gateway.trusts(organization_id)
    return GatewayTrustOut(organization_id=organization_id, trusts=trusts)
