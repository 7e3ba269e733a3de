"""The data plane's client for the control plane's internal API (`/internal/…`): key validation,
project lookup, active releases and their archives, project env vars, budget reservations and
outbox shipping, over HTTP with a service token.

Every call goes through one circuit breaker. A network failure, a 5xx or a refused service token
raises `ControlPlaneUnavailable` (a 503 with `Retry-After`): callers decide what an outage means
for them, and none of them grants access because of one.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx

from karta.dataplane.breaker import CircuitBreaker
from karta.errors import (
    BudgetExhausted,
    NoActiveRelease,
    ProjectNotFound,
    ReleaseUnavailable,
    Unavailable,
)
from karta.principal import Principal

log = logging.getLogger(__name__)

TIMEOUT = 5.0
ARTIFACT_READ_TIMEOUT = 60.0  # between two chunks of a release archive
CHUNK = 1 << 16


class ControlPlaneUnavailable(Unavailable):
    code = "control_plane_unavailable"


@dataclass(frozen=True)
class Project:
    id: int
    slug: str
    organization_id: int


@dataclass(frozen=True)
class ActiveRelease:
    """The release a project's new sessions start on."""

    project_id: int
    project_slug: str
    organization_id: int
    version: int
    digest: str
    harness: str | None


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

    def _gate(self) -> None:
        wait = self.breaker.retry_after()
        if wait is not None:
            raise ControlPlaneUnavailable("the control plane is unreachable", retry_after=wait)

    def _unreachable(self, method: str, path: str, exc: Exception) -> ControlPlaneUnavailable:
        self.breaker.failure()
        log.warning("control plane call %s %s failed: %r", method, path, exc)
        return ControlPlaneUnavailable(
            "the control plane is unreachable", retry_after=self.breaker.retry_after() or 1
        )

    def _judge(self, response: httpx.Response) -> None:
        self.breaker.success()
        if response.status_code in (401, 403):
            log.error("the control plane refused our service token: check KARTA_SERVICE_TOKENS")
        if response.status_code >= 500 or response.status_code in (401, 403):
            raise ControlPlaneUnavailable(
                f"the control plane answered {response.status_code}", retry_after=1
            )

    async def _call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        self._gate()
        try:
            response = await self._http.request(method, path, **kw)
        except httpx.TransportError as exc:
            raise self._unreachable(method, path, exc) from exc
        self._judge(response)
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

    async def active_release(self, ref: str, organization_id: int) -> ActiveRelease:
        """The project's active release; `ProjectNotFound` (404) or `NoActiveRelease` (409)."""
        response = await self._call(
            "GET",
            f"/internal/projects/{ref}/active_release",
            params={"organization_id": organization_id},
        )
        if response.status_code == 404:
            raise ProjectNotFound(f"project {ref!r} not found")
        if response.status_code == 409:
            raise NoActiveRelease(f"project {ref!r} has no active release")
        if response.status_code != 200:
            raise ControlPlaneUnavailable(
                f"the active release lookup failed with {response.status_code}", retry_after=1
            )
        body = response.json()
        return ActiveRelease(
            project_id=int(body["project_id"]),
            project_slug=str(body["project_slug"]),
            organization_id=int(body["organization_id"]),
            version=int(body["version"]),
            digest=str(body["digest"]),
            harness=body.get("harness"),
        )

    async def artifact(self, digest: str, organization_id: int) -> AsyncIterator[bytes]:
        """A release archive as it arrives; the caller verifies its digest. The control plane
        serves it only to an organization that published it."""
        path = f"/internal/artifacts/{digest}"
        self._gate()
        try:
            async with self._http.stream(
                "GET",
                path,
                params={"organization_id": organization_id},
                timeout=httpx.Timeout(TIMEOUT, read=ARTIFACT_READ_TIMEOUT),
            ) as response:
                self._judge(response)
                if response.status_code == 404:
                    raise ReleaseUnavailable(f"release {digest[:12]} is not available")
                if response.status_code != 200:
                    raise ControlPlaneUnavailable(
                        f"fetching release {digest[:12]} failed with {response.status_code}",
                        retry_after=1,
                    )
                async for chunk in response.aiter_bytes(CHUNK):
                    yield chunk
        except httpx.TransportError as exc:
            raise self._unreachable("GET", path, exc) from exc

    async def project_env(self, ref: str, organization_id: int) -> dict[str, str]:
        """A project's env vars, decrypted: values for its harness processes, never to log."""
        response = await self._call(
            "GET", f"/internal/projects/{ref}/env", params={"organization_id": organization_id}
        )
        if response.status_code == 404:
            raise ProjectNotFound(f"project {ref!r} not found")
        if response.status_code != 200:
            raise ControlPlaneUnavailable(
                f"the env lookup failed with {response.status_code}", retry_after=1
            )
        env = response.json().get("env") or {}
        return {str(k): str(v) for k, v in env.items()}

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
