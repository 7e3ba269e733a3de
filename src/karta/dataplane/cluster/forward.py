"""Forwarding a session's action to its owner: a turn, an input decision, an interrupt or the
end of the session, over the owner's internal API with the service token. The owner answers as
it would answer the client, and an error answer is relayed as it came (same status, same
body), so the client cannot tell which replica it reached.

Only an owner that could not be reached at all (the request never left) is retried elsewhere;
one that stopped answering after it got the request may have acted on it, so the client gets a
503 rather than a turn started twice.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TypeVar

import httpx
from pydantic import BaseModel

from karta.core import internal_api as api
from karta.core.errors import OwnerMoved, Relayed, Unavailable
from karta.core.http_keepalive import karta_client
from karta.dataplane.cluster.ownership import Owner
from karta.dataplane.principal import Principal
from karta.dataplane.runtime.turns import TurnHandle, TurnRequest

M = TypeVar("M", bound=BaseModel)
TIMEOUT = httpx.Timeout(30.0, connect=2.0)


class OwnerUnreachable(Exception):
    """The owner could not be connected to (it is likely dead: its lease will expire)."""


def caller_of(principal: Principal) -> api.Caller:
    return api.Caller.model_validate({**asdict(principal), "scopes": sorted(principal.scopes)})


def principal_of(caller: api.Caller) -> Principal:
    return Principal(**{**caller.model_dump(), "scopes": frozenset(caller.scopes)})


class Forwarder:
    def __init__(self, token: str | None, transport: httpx.AsyncBaseTransport | None = None):
        self._token = token
        self._client = karta_client(timeout=TIMEOUT, transport=transport)

    async def send(
        self, owner: Owner, principal: Principal, session_id: str, request: TurnRequest
    ) -> TurnHandle:
        body = api.ForwardedTurn(caller=caller_of(principal), **asdict(request))
        path = api.OWNER_TURN.format(session_id=session_id)
        started = await self._post(owner, path, body, api.TurnStarted)
        return TurnHandle(
            started.turn_id, session_id, started.after, started.agent, started.user_message
        )

    async def decide(
        self, owner: Owner, principal: Principal, session_id: str, request_id: str, decision: str
    ) -> tuple[str, int]:
        body = api.ForwardedDecision.model_validate(
            {"caller": caller_of(principal), "decision": decision}
        )
        path = api.OWNER_DECISION.format(session_id=session_id, request_id=request_id)
        position = await self._post(owner, path, body, api.LogPosition)
        return position.turn_id, position.after

    async def interrupt(
        self, owner: Owner, principal: Principal, session_id: str
    ) -> tuple[str, int]:
        body = api.ForwardedCall(caller=caller_of(principal))
        path = api.OWNER_INTERRUPT.format(session_id=session_id)
        position = await self._post(owner, path, body, api.LogPosition)
        return position.turn_id, position.after

    async def end(self, owner: Owner, principal: Principal, session_id: str) -> None:
        body = api.ForwardedCall(caller=caller_of(principal))
        await self._post(owner, api.OWNER_END.format(session_id=session_id), body, api.SessionEnded)

    async def _post(self, owner: Owner, path: str, body: BaseModel, answer: type[M]) -> M:
        if self._token is None:
            raise Unavailable("replicas need KARTA_SERVICE_TOKENS to forward to each other")
        try:
            response = await self._client.post(
                owner.url + path,
                json=body.model_dump(mode="json"),
                headers={"Authorization": f"Bearer {self._token}"},
            )
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise OwnerUnreachable(owner.url) from exc
        except httpx.HTTPError as exc:
            raise Unavailable(
                "the replica running this session stopped answering; retry", retry_after=1
            ) from exc
        if response.status_code >= 400:
            raise _relayed(response)
        return answer.model_validate(response.json())

    async def close(self) -> None:
        await self._client.aclose()


def _relayed(response: httpx.Response) -> Exception:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or "error" not in body:
        return Unavailable("the replica running this session failed; retry", retry_after=1)
    if body["error"] == OwnerMoved.code:
        return OwnerMoved(str(body.get("message", "")))
    retry = response.headers.get("retry-after")
    return Relayed(response.status_code, body, int(retry) if retry and retry.isdigit() else None)
