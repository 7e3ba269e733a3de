"""Release resolution against the control plane: the release a project's new session starts on,
published releases' archives, and projects' env vars.

Active-release pointers and env vars are cached per (organization, project) for a few seconds
(`KARTA_ACTIVE_RELEASE_CACHE_TTL`) and dropped at once by the control plane's push after an
activation, a rollback or an env change; during an outage a recent answer keeps serving (the
stale grace). Refusals (unknown project, no active release) are never cached.

`karta serve DIR` registers DIR as a project of the local organization: until a release of it
is activated, its project routes run DIR itself (the working copy), without publishing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from karta.core.clock import SYSTEM, Clock
from karta.core.errors import NoActiveRelease
from karta.dataplane.control.cache import CachedLookup
from karta.dataplane.control.client import ControlPlaneClient, ControlPlaneUnavailable
from karta.dataplane.principal import Principal
from karta.dataplane.runtime.apps import WORKING_COPY, Pin


@dataclass(frozen=True)
class LocalProject:
    """The project whose working copy is the served folder (`karta serve DIR`)."""

    organization_slug: str
    slug: str

    def names(self, principal: Principal) -> bool:
        return (principal.organization_slug, principal.project_slug) == (
            self.organization_slug,
            self.slug,
        )


class ControlPlaneReleases:
    def __init__(
        self,
        control: ControlPlaneClient | None,
        *,
        ttl: float,
        stale: float,
        max_entries: int,
        local: LocalProject | None = None,
        clock: Clock = SYSTEM,
    ) -> None:
        self.control = control
        self.local = local
        self.pointers: CachedLookup[tuple[int, int], Pin] = CachedLookup(
            ttl=ttl, stale=stale, max_entries=max_entries, clock=clock
        )
        self.envs: CachedLookup[tuple[int, int], dict[str, str]] = CachedLookup(
            ttl=ttl, stale=stale, max_entries=max_entries, clock=clock
        )

    def _control(self) -> ControlPlaneClient:
        if self.control is None:
            raise ControlPlaneUnavailable("no control plane is configured", retry_after=30)
        return self.control

    async def active(self, principal: Principal) -> Pin:
        org, project = principal.organization_id, principal.project_id
        if org is None or project is None:
            return WORKING_COPY  # the flat routes (and open mode) run the served folder
        return await self.pointers.get((org, project), org, lambda: self._pointer(principal))

    async def _pointer(self, principal: Principal) -> Pin:
        assert principal.organization_id is not None and principal.project_id is not None
        try:
            release = await self._control().active_release(
                str(principal.project_id), principal.organization_id
            )
        except NoActiveRelease:
            if self.local is not None and self.local.names(principal):
                return WORKING_COPY
            raise
        return Pin(release.version, release.digest)

    def artifact(self, digest: str, organization_id: int) -> AsyncIterator[bytes]:
        return self._control().artifact(digest, organization_id)

    async def env(self, organization_id: int, project_id: int) -> dict[str, str]:
        return await self.envs.get(
            (organization_id, project_id),
            organization_id,
            lambda: self._control().project_env(str(project_id), organization_id),
        )

    def evict(self, organization_id: int) -> tuple[int, int]:
        """The control plane's push: forget the org's pointers and env vars now."""
        return self.pointers.evict(organization_id), self.envs.evict(organization_id)
