"""The data plane's client for the control plane's internal API (`/internal/…`): key validation,
project lookup, budget reservations and usage shipping, over HTTP with a service token.

Every call goes through one circuit breaker. A network failure, a 5xx or a refused service token
raises `ControlPlaneUnavailable` (a 503 with `Retry-After`): callers decide what an outage means
for them, and none of them grants access because of one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import httpx

from karta.dataplane.breaker import CircuitBreaker
from karta.errors import BudgetExhausted, Unavailable
from karta.principal import Principal

log = logging.getLogger(__name__)

TIMEOUT = 5.0


class ControlPlaneUnavailable(Unavailable):
    code = "control_plane_unavailable"


@dataclass(frozen=True)
class Project:
    id: int
    slug: str
    organization_id: int


class EventsRefused(Exception):
    """The control plane refused a batch as malformed: resending it unchanged cannot help."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status


class ControlPlaneClient:
    def __init__(
        self,
        base_url: str,
        service_token: str | None,
        *,
        breaker: CircuitBreaker | None = None,
        timeout: float = TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {service_token}"} if service_token else {}
        self.breaker = breaker or CircuitBreaker()
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), headers=headers, timeout=timeout, transport=transport
        )

    async def close(self) -> None:
        await self._http.aclose()

    async def _call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        wait = self.breaker.retry_after()
        if wait is not None:
            raise ControlPlaneUnavailable("the control plane is unreachable", retry_after=wait)
        try:
            response = await self._http.request(method, path, **kw)
        except httpx.TransportError as exc:
            self.breaker.failure()
            log.warning("control plane call %s %s failed: %r", method, path, exc)
            raise ControlPlaneUnavailable(
                "the control plane is unreachable", retry_after=self.breaker.retry_after() or 1
            ) from exc
        self.breaker.success()
        if response.status_code in (401, 403):
            log.error("the control plane refused our service token: check KARTA_SERVICE_TOKENS")
        if response.status_code >= 500 or response.status_code in (401, 403):
            raise ControlPlaneUnavailable(
                f"the control plane answered {response.status_code}", retry_after=1
            )
        return response

    async def validate_key(self, key: str) -> Principal | None:
        """The key's principal, or None for an unknown or revoked key."""
        response = await self._call("POST", "/internal/keys/validate", json={"key": key})
        body = response.json() if response.status_code == 200 else {}
        if body.get("valid") is not True:
            return None
        return Principal(
            kind="api_key",
            organization_id=int(body["organization_id"]),
            organization_slug=body.get("organization_slug"),
            scopes=frozenset(body.get("scopes") or ()),
            api_key_id=body.get("api_key_id"),
            api_key_prefix=body.get("api_key_prefix"),
            budget_ok=bool(body.get("budget_ok", True)),
            budget_reason=body.get("budget_reason"),
        )

    async def project(self, ref: str, organization_id: int) -> Project | None:
        """The organization's project named by slug or id, or None when it has no such project."""
        response = await self._call(
            "GET", f"/internal/projects/{ref}", params={"organization_id": organization_id}
        )
        if response.status_code != 200:
            return None
        body = response.json()
        return Project(int(body["id"]), str(body["slug"]), int(body["organization_id"]))

    async def reserve(
        self, reservation_id: str, organization_id: int, api_key_id: int | None
    ) -> None:
        """Set budget aside for a turn; raises `BudgetExhausted` when the budget is spent."""
        response = await self._call(
            "POST",
            "/internal/budget/reserve",
            json={
                "reservation_id": reservation_id,
                "organization_id": organization_id,
                "api_key_id": api_key_id,
            },
        )
        if response.status_code == 402:
            raise BudgetExhausted(str(response.json().get("reason") or "budget_exhausted"))
        if response.status_code != 200:
            raise ControlPlaneUnavailable(
                f"the budget reservation failed with {response.status_code}", retry_after=1
            )

    async def send_events(self, path: str, events: list[dict[str, Any]]) -> dict[str, Any]:
        """Ship an outbox batch (usage or audit events) to `path`. A 4xx means the batch itself
        is unacceptable (`EventsRefused`); anything else unsuccessful is an outage."""
        response = await self._call("POST", path, json={"events": events})
        if 400 <= response.status_code < 500:
            raise EventsRefused(response.status_code, response.text[:500])
        if not response.is_success:
            raise ControlPlaneUnavailable(
                f"the control plane refused events at {path}: {response.status_code}",
                retry_after=1,
            )
        return dict(response.json())
