"""The data plane's client for the control plane's internal API (`/internal/…`): key validation,
project lookup, active releases and their archives, project env vars, provider keys and model
settings, budget checks, outbox shipping and the embed edge, over HTTP with a service token.
Requests are built from, and answers parsed with, the planes' contract (`karta.core.internal_api`).

Every call goes through one circuit breaker. A network failure, a 5xx, a refused service token
or an answer that breaks the contract raises `ControlPlaneUnavailable` (a 503 with
`Retry-After`): callers decide what an outage means for them, and none of them grants access
because of one.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from karta.core import internal_api as api
from karta.core.errors import (
    BudgetExhausted,
    NoActiveRelease,
    ProjectNotFound,
    ReleaseUnavailable,
    Unavailable,
)
from karta.core.http_keepalive import karta_client
from karta.dataplane.control.breaker import CircuitBreaker
from karta.dataplane.principal import Principal

log = logging.getLogger(__name__)

TIMEOUT = 5.0
PROBE_TIMEOUT = 1.0  # readiness must answer faster than the probes polling it give up
ARTIFACT_READ_TIMEOUT = 60.0  # between two chunks of a release archive
CHUNK = 1 << 16
T = TypeVar("T")
KEY_VALIDATION: TypeAdapter[api.KeyRefused | api.KeyValidated] = TypeAdapter(api.KeyValidation)
EMBED_LOOKUP: TypeAdapter[api.EmbedKeyMissing | api.EmbedKeyInfo] = TypeAdapter(api.EmbedKeyLookup)
EMBED_MINT: TypeAdapter[api.EmbedToken | api.EmbedRefusal] = TypeAdapter(api.EmbedMint)

# Why the control plane cannot serve us (`ControlPlaneUnavailable.state`, shown by /readyz).
UNREACHABLE = "unreachable"  # no answer: refused, timed out, or the breaker is open
UNAUTHORIZED = "unauthorized"  # it refused our service token
ERROR = "error"  # a 5xx, an unexpected status, or an answer outside the contract


class ControlPlaneUnavailable(Unavailable):
    code = "control_plane_unavailable"

    def __init__(self, message: str, retry_after: int = 1, *, state: str = UNREACHABLE) -> None:
        super().__init__(message, retry_after=retry_after)
        self.state = state


class EventsRefused(Exception):
    """The control plane refused a batch as malformed: resending it unchanged cannot help."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{status}: {detail}")


def _unexpected(what: str, response: httpx.Response) -> ControlPlaneUnavailable:
    return ControlPlaneUnavailable(f"{what} failed with {response.status_code}", state=ERROR)


def _parse(validate: Callable[[bytes], T], response: httpx.Response) -> T:
    """An answer as the contract says it is; one that is not is the control plane failing."""
    try:
        return validate(response.content)
    except ValidationError as exc:
        path = response.request.url.path
        log.error("the answer to %s breaks the contract: %s", path, api.problems(exc))
        raise ControlPlaneUnavailable(
            f"the control plane's answer to {path} breaks the contract", state=ERROR
        ) from exc


def _principal(answer: api.KeyValidated) -> Principal:
    return Principal(
        kind="api_key",
        organization_id=answer.organization_id,
        organization_slug=answer.organization_slug,
        scopes=frozenset(answer.scopes),
        api_key_id=answer.api_key_id,
        api_key_prefix=answer.api_key_prefix,
        budget_ok=answer.budget_ok,
        budget_reason=answer.budget_reason,
    )


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
        self._http = karta_client(
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
            raise ControlPlaneUnavailable(
                f"the control plane answered {response.status_code}", state=UNAUTHORIZED
            )
        if response.status_code >= 500:
            raise ControlPlaneUnavailable(
                f"the control plane answered {response.status_code}", state=ERROR
            )

    async def _call(
        self, method: str, path: str, body: BaseModel | None = None, **kw: Any
    ) -> httpx.Response:
        self._gate()
        if body is not None:
            kw["json"] = body.model_dump(mode="json")
        try:
            response = await self._http.request(method, path, **kw)
        except httpx.TransportError as exc:
            raise self._unreachable(method, path, exc) from exc
        self._judge(response)
        return response

    async def probe(self) -> None:
        """Returns when the control plane answers and accepts our service token (one cheap
        call, with a short timeout); raises `ControlPlaneUnavailable` otherwise."""
        response = await self._call("GET", api.WHOAMI, timeout=PROBE_TIMEOUT)
        if response.status_code != 200:
            raise _unexpected("the control plane probe", response)
        _parse(api.ServicePrincipal.model_validate_json, response)

    async def validate_key(self, key: str) -> Principal | None:
        """The key's principal, or None for an unknown or revoked key."""
        response = await self._call("POST", api.VALIDATE_KEY, api.ValidateKey(key=key))
        if response.status_code != 200:
            return None  # the control plane could not take it as a key (422): no access
        answer = _parse(KEY_VALIDATION.validate_json, response)
        return _principal(answer) if isinstance(answer, api.KeyValidated) else None

    async def project(self, ref: str, organization_id: int) -> api.ProjectInfo | None:
        """The organization's project named by slug or id, or None when it has no such project."""
        response = await self._call(
            "GET", api.PROJECT.format(ref=ref), params={"organization_id": organization_id}
        )
        if response.status_code != 200:
            return None
        return _parse(api.ProjectInfo.model_validate_json, response)

    async def active_release(self, ref: str, organization_id: int) -> api.ReleaseInfo:
        """The project's active release; `ProjectNotFound` (404) or `NoActiveRelease` (409)."""
        response = await self._call(
            "GET", api.ACTIVE_RELEASE.format(ref=ref), params={"organization_id": organization_id}
        )
        if response.status_code == 404:
            raise ProjectNotFound(f"project {ref!r} not found")
        if response.status_code == 409:
            raise NoActiveRelease(f"project {ref!r} has no active release")
        if response.status_code != 200:
            raise _unexpected("the active release lookup", response)
        return _parse(api.ReleaseInfo.model_validate_json, response)

    async def artifact(self, digest: str, organization_id: int) -> AsyncIterator[bytes]:
        """A release archive as it arrives; the caller verifies its digest. The control plane
        serves it only to an organization that published it."""
        path = api.ARTIFACT.format(digest=digest)
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
                    raise _unexpected(f"fetching release {digest[:12]}", response)
                async for chunk in response.aiter_bytes(CHUNK):
                    yield chunk
        except httpx.TransportError as exc:
            raise self._unreachable("GET", path, exc) from exc

    async def project_env(self, ref: str, organization_id: int) -> dict[str, str]:
        """A project's env vars, decrypted: values for its harness processes, never to log."""
        response = await self._call(
            "GET", api.PROJECT_ENV.format(ref=ref), params={"organization_id": organization_id}
        )
        if response.status_code == 404:
            raise ProjectNotFound(f"project {ref!r} not found")
        if response.status_code != 200:
            raise _unexpected("the env lookup", response)
        return _parse(api.ProjectEnv.model_validate_json, response).env

    async def model_access(self, organization_id: int, project_id: int | None) -> api.ModelAccess:
        """The provider keys (decrypted: for the model proxy only, never to log) and model
        settings that serve this project's model calls."""
        params = {"organization_id": organization_id}
        if project_id is not None:
            params["project_id"] = project_id
        response = await self._call("GET", api.MODEL_ACCESS, params=params)
        if response.status_code != 200:
            raise _unexpected("the model access lookup", response)
        return _parse(api.ModelAccess.model_validate_json, response)

    async def check_budget(
        self,
        organization_id: int,
        api_key_id: int | None,
        pending: list[api.PendingUsage],
        embed_key_id: int | None = None,
    ) -> api.BudgetOk:
        """Raises `BudgetExhausted` when the org or the key (or, for an anonymous end user, the
        embed key's anonymous cap) may not spend more."""
        body = api.BudgetCheck(
            organization_id=organization_id,
            api_key_id=api_key_id,
            pending=pending,
            embed_key_id=embed_key_id,
        )
        response = await self._call("POST", api.BUDGET_CHECK, body)
        if response.status_code == 402:
            refusal = _parse(api.BudgetRefusal.model_validate_json, response)
            raise BudgetExhausted(refusal.reason)
        if response.status_code != 200:
            raise _unexpected("the budget check", response)
        return _parse(api.BudgetOk.model_validate_json, response)

    async def send_events(
        self, path: str, batch: api.UsageBatch | api.ReportedAuditBatch
    ) -> api.BatchResult:
        """Ship an outbox batch (usage or audit events) to `path`. A 4xx means the batch itself
        is unacceptable (`EventsRefused`); anything else unsuccessful is an outage."""
        response = await self._call("POST", path, batch)
        if 400 <= response.status_code < 500:
            raise EventsRefused(response.status_code, response.text[:500])
        if not response.is_success:
            raise _unexpected(f"sending events to {path}", response)
        return _parse(api.BatchResult.model_validate_json, response)

    # --- the embed edge ---------------------------------------------------------------------------

    async def embed_key(self, embed_key: str) -> api.EmbedKeyInfo | None:
        """What a publishable key opens, or None for an unknown or revoked one."""
        body = api.ResolveEmbedKey(embed_key=embed_key)
        response = await self._call("POST", api.EMBED_KEY, body)
        if response.status_code != 200:
            return None
        answer = _parse(EMBED_LOOKUP.validate_json, response)
        return answer if isinstance(answer, api.EmbedKeyInfo) else None

    async def mint_embed_token(self, body: api.MintEmbedToken) -> api.EmbedToken | api.EmbedRefusal:
        """The control plane's answer for the browser: a token, or the refusal to pass on."""
        response = await self._call("POST", api.EMBED_SESSION_TOKENS, body)
        if response.status_code != 200:
            raise _unexpected("minting an embed session token", response)
        return _parse(EMBED_MINT.validate_json, response)

    async def embed_origins(self, ref: str) -> api.EmbedOrigins:
        response = await self._call("GET", api.EMBED_ORIGINS, params={"project": ref})
        if response.status_code != 200:
            raise _unexpected("the embed origins lookup", response)
        return _parse(api.EmbedOrigins.model_validate_json, response)

    async def hosted_page(self, org: str, project: str) -> api.HostedPage | None:
        response = await self._call("GET", api.HOSTED_PAGE.format(org=org, project=project))
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise _unexpected("the hosted page lookup", response)
        return _parse(api.HostedPage.model_validate_json, response)
