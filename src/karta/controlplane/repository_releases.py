"""The repository's releases part: the organization's projects, their releases, their env
vars and their embed keys."""

from __future__ import annotations

from sqlalchemy import func, select

from karta.controlplane.models import EmbedKey, Project, ProjectEnvVar, Release
from karta.controlplane.repository_base import OrgScoped, spelled_id
from karta.core.errors import NotFound, ProjectNotFound


class ReleaseNotFound(NotFound):
    code = "release_not_found"


class EmbedKeyNotFound(NotFound):
    code = "embed_key_not_found"


class ReleaseQueries(OrgScoped):
    # --- projects ------------------------------------------------------------------------------

    async def projects(self) -> list[Project]:
        rows = await self.session.scalars(
            select(Project)
            .where(Project.organization_id == self.organization_id)
            .order_by(Project.id)
        )
        return list(rows.all())

    async def find_project(self, ref: str) -> Project | None:
        """By slug, or by numeric id."""
        match = Project.slug == ref
        if (project_id := spelled_id(ref)) is not None:
            match = match | (Project.id == project_id)
        return await self.session.scalar(
            select(Project).where(Project.organization_id == self.organization_id, match).limit(1)
        )

    async def project_by_id(self, project_id: int) -> Project:
        query = select(Project).where(
            Project.organization_id == self.organization_id, Project.id == project_id
        )
        missing = ProjectNotFound(f"project {project_id} not found")
        return await self._one(query, missing, row_id=project_id)

    async def project(self, ref: str, *, lock: bool = False) -> Project:
        """With `lock`, the row is held until the transaction ends: version allocation and the
        active-release pointer are serialized per project."""
        found = await self.find_project(ref)
        if found is None:
            raise ProjectNotFound(f"project {ref!r} not found")
        if lock:
            await self.session.refresh(found, with_for_update=True)
        return found

    # --- releases ------------------------------------------------------------------------------

    async def releases(self, project_id: int) -> list[Release]:
        rows = await self.session.scalars(
            select(Release)
            .where(
                Release.organization_id == self.organization_id, Release.project_id == project_id
            )
            .order_by(Release.version)
        )
        return list(rows.all())

    async def find_release(
        self, project_id: int, *, version: int | None = None, release_id: int | None = None
    ) -> Release | None:
        query = select(Release).where(
            Release.organization_id == self.organization_id, Release.project_id == project_id
        )
        if version is not None:
            query = query.where(Release.version == version)
        if release_id is not None:
            query = query.where(Release.id == release_id)
        return await self.session.scalar(query)

    async def release(self, project_id: int, version: int) -> Release:
        found = await self.find_release(project_id, version=version)
        if found is None:
            raise ReleaseNotFound(f"release v{version} not found")
        return found

    async def ready_release_with_digest(self, project_id: int, digest: str) -> Release | None:
        return await self.session.scalar(
            select(Release)
            .where(
                Release.organization_id == self.organization_id,
                Release.project_id == project_id,
                Release.digest == digest,
                Release.status == "ready",
            )
            .order_by(Release.version.desc())
            .limit(1)
        )

    async def latest_version(self, project_id: int) -> int:
        found = await self.session.scalar(
            select(func.max(Release.version)).where(
                Release.organization_id == self.organization_id, Release.project_id == project_id
            )
        )
        return int(found or 0)

    async def holds_digest(self, digest: str) -> bool:
        found = await self.session.scalar(
            select(Release.id)
            .where(Release.organization_id == self.organization_id, Release.digest == digest)
            .limit(1)
        )
        return found is not None

    # --- project env vars ----------------------------------------------------------------------

    async def env_vars(self, project_id: int) -> list[ProjectEnvVar]:
        rows = await self.session.scalars(
            select(ProjectEnvVar)
            .where(
                ProjectEnvVar.organization_id == self.organization_id,
                ProjectEnvVar.project_id == project_id,
            )
            .order_by(ProjectEnvVar.name)
        )
        return list(rows.all())

    async def env_var(self, project_id: int, name: str) -> ProjectEnvVar | None:
        return await self.session.scalar(
            select(ProjectEnvVar).where(
                ProjectEnvVar.organization_id == self.organization_id,
                ProjectEnvVar.project_id == project_id,
                ProjectEnvVar.name == name,
            )
        )

    # --- embed keys ----------------------------------------------------------------------------

    async def embed_keys(self, project_id: int) -> list[EmbedKey]:
        rows = await self.session.scalars(
            select(EmbedKey)
            .where(
                EmbedKey.organization_id == self.organization_id,
                EmbedKey.project_id == project_id,
            )
            .order_by(EmbedKey.id)
        )
        return list(rows.all())

    async def embed_key_by_id(self, key_id: int) -> EmbedKey:
        query = select(EmbedKey).where(
            EmbedKey.organization_id == self.organization_id, EmbedKey.id == key_id
        )
        missing = EmbedKeyNotFound(f"embed key {key_id} not found")
        return await self._one(query, missing, row_id=key_id)

    async def embed_key(self, project_id: int, key_id: int) -> EmbedKey:
        query = select(EmbedKey).where(
            EmbedKey.organization_id == self.organization_id,
            EmbedKey.project_id == project_id,
            EmbedKey.id == key_id,
        )
        missing = EmbedKeyNotFound(f"embed key {key_id} not found")
        return await self._one(query, missing, row_id=key_id)

    async def hosted_page_key(self, project_id: int) -> EmbedKey | None:
        """The project's newest live key that serves its hosted chat page."""
        return await self.session.scalar(
            select(EmbedKey)
            .where(
                EmbedKey.organization_id == self.organization_id,
                EmbedKey.project_id == project_id,
                EmbedKey.hosted_page.is_(True),
                EmbedKey.enabled.is_(True),
                EmbedKey.revoked_at.is_(None),
            )
            .order_by(EmbedKey.id.desc())
            .limit(1)
        )
