"""Who is calling: every request resolves to a `Principal`, or is refused.

- API keys (`kt_live_…`) are validated by the control plane and cached (`dataplane/cache.py`).
  While the control plane is unreachable a cached key keeps working for a stale grace period;
  an uncached one gets 503 with `Retry-After`. An outage never grants access.
- Session tokens (HS256 JWTs for end users) are verified offline and accepted only on the
  project route family, `/v1/projects/{ref}/…`, for their own project.
- `karta serve --open` disables authentication: every caller is the unscoped `OPEN` principal,
  and the only project is the served folder's.

Which release a project route's new session runs is not decided here: see `dataplane/releases.py`.

The route dependencies are `flat_principal` (`/v1/sessions…`), `project_principal`
(`/v1/projects/{ref}/…`) and `requiring(scope, resolve)` on top of either.
"""

from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Annotated

from fastapi import Depends, Path, Request

from karta.core import session_tokens
from karta.core.api_keys import looks_like_api_key
from karta.core.errors import Forbidden, ProjectNotFound, Unauthorized
from karta.core.internal_api import ProjectInfo
from karta.dataplane.control.cache import (
    CachedLookup,
    Hit,
    KeyCache,
    Refreshes,
    SingleFlight,
    digest,
)
from karta.dataplane.control.client import ControlPlaneClient, ControlPlaneUnavailable
from karta.dataplane.principal import OPEN, SESSION_SCOPES, Principal

PROJECT_REF = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
Resolver = Callable[..., Awaitable[Principal]]


class Authenticator:
    def __init__(
        self,
        control: ControlPlaneClient | None,
        keys: KeyCache,
        projects: CachedLookup[tuple[int, str], ProjectInfo],
        *,
        session_secret: str | None = None,
        open_auth: bool = False,
        open_project: str | None = None,
    ) -> None:
        self.control = control
        self.keys = keys
        self.projects = projects
        self.session_secret = session_secret
        self.open_auth = open_auth
        # Open mode has no control plane to know projects: only the served folder's is one.
        self.open_project = open_project
        self._flights = SingleFlight()
        self._refreshes = Refreshes()
        self._evictions = 0  # answers that straddle an eviction are not cached

    def _control(self) -> ControlPlaneClient:
        if self.control is None:
            raise ControlPlaneUnavailable("no control plane is configured", retry_after=30)
        return self.control

    def session_claims(self, token: str) -> session_tokens.SessionClaims | None:
        if self.session_secret is None:
            return None
        return session_tokens.verify(self.session_secret, token)

    async def api_key(self, key: str) -> Principal:
        if not looks_like_api_key(key):
            raise Unauthorized("invalid API key")
        hit = self.keys.get(key)
        if hit is not None and hit.fresh:
            if hit.due:
                self._refreshes.start(digest(key), lambda: self._ask(key, None))
            return hit.value
        if self.keys.refused(key):
            raise Unauthorized("invalid or revoked API key")
        return await self._ask(key, hit)

    async def _ask(self, key: str, hit: Hit[Principal] | None) -> Principal:
        """The control plane's answer for the key, cached (a refusal too); `hit`, the stale
        answer kept while it cannot be reached."""
        generation = self._evictions
        try:
            found = await self._flights.run(digest(key), lambda: self._validate(key))
        except ControlPlaneUnavailable:
            if hit is not None:
                return hit.value  # the stale grace: known keys ride out an outage
            raise
        if generation == self._evictions:
            if found is None:
                self.keys.put_refused(key)
            else:
                self.keys.put(key, found)
        if found is None:
            raise Unauthorized("invalid or revoked API key")
        return found

    async def _validate(self, key: str) -> Principal | None:
        return await self._control().validate_key(key)

    async def project(self, organization_id: int, ref: str) -> ProjectInfo:
        async def lookup() -> ProjectInfo:
            found = await self._control().project(ref, organization_id)
            if found is None:
                raise ProjectNotFound(f"project {ref!r} not found")
            return found

        return await self.projects.get((organization_id, ref), organization_id, lookup)

    def evict(self, organization_id: int) -> int:
        """The control plane's push: forget what we know of the organization now."""
        self._evictions += 1
        self.projects.evict(organization_id)
        return self.keys.evict(organization_id)


def _bearer(request: Request, *, x_api_key: bool = False) -> str:
    """The credential in `Authorization: Bearer …` (or, where allowed, `x-api-key: …`, which
    the Anthropic SDK sends)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() == "bearer" and token:
        return token
    if x_api_key and (key := request.headers.get("x-api-key", "").strip()):
        return key
    raise Unauthorized("missing bearer credential: send 'Authorization: Bearer kt_live_…'")


async def flat_principal(request: Request) -> Principal:
    """`/v1/sessions…` and `/v1/app`: API keys only."""
    auth: Authenticator = request.app.state.auth
    if auth.open_auth:
        return OPEN
    token = _bearer(request)
    if auth.session_claims(token) is not None:
        raise Unauthorized("session tokens are valid only on /v1/projects/{ref}/… routes")
    return await auth.api_key(token)


async def project_principal(
    request: Request,
    ref: Annotated[str, Path(description="the project's slug or id", pattern=PROJECT_REF)],
) -> Principal:
    """`/v1/projects/{ref}/…`: an API key of the project's organization, or a session token
    minted for this project (as a bearer credential or in `x-api-key`)."""
    auth: Authenticator = request.app.state.auth
    if auth.open_auth:
        if ref != auth.open_project:
            raise ProjectNotFound(f"project {ref!r} not found")
        return OPEN
    token = _bearer(request, x_api_key=True)
    claims = auth.session_claims(token)
    if claims is not None:
        if ref not in (claims.project_slug, str(claims.project_id)):
            raise Forbidden("this session token belongs to another project")
        principal = Principal(
            kind="session",
            organization_id=claims.org_id,
            organization_slug=claims.org_slug,
            scopes=SESSION_SCOPES,
            budget_ok=claims.budget_ok,
            budget_reason=None if claims.budget_ok else "budget_exhausted",
            project_id=claims.project_id,
            project_slug=claims.project_slug,
            sub=claims.sub,
            embed_key_id=claims.embed_key_id,
        )
    else:
        principal = await auth.api_key(token)
        assert principal.organization_id is not None, "API keys always belong to an org"
        project = await auth.project(principal.organization_id, ref)
        principal = replace(principal, project_id=project.id, project_slug=project.slug)
    return principal


def requiring(scope: str, resolve: Resolver) -> Resolver:
    """A dependency: the caller as `resolve` finds it, refused with 403 without `scope`."""

    async def dependency(principal: Annotated[Principal, Depends(resolve)]) -> Principal:
        principal.require(scope)
        return principal

    return dependency
