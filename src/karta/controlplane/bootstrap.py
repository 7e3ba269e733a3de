"""The embedded deployment's first start (`karta serve`): a local organization, its admin key
and the served folder's project, plus `$KARTA_HOME/credentials.json` (mode 0600) for the CLI."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from karta.controlplane import credentials, orgs
from karta.controlplane.repository import OrgRepository
from karta.core.credentials_file import read_credentials, write_credentials

LOCAL_ORG = "local"


@dataclass(frozen=True)
class LocalBootstrap:
    project_slug: str
    data_plane_url: str
    control_url: str


async def _local_org(session: AsyncSession) -> OrgRepository:
    org = await credentials.organization_by_slug(session, LOCAL_ORG)
    if org is not None:
        return OrgRepository(session, org.id)
    return await orgs.create_organization(session, "Local", LOCAL_ORG, None, None)


async def ensure_local(db: async_sessionmaker, home: Path, local: LocalBootstrap) -> Path:
    """Reuse the stored key while it is still a live key of the local org; otherwise mint one."""
    stored = read_credentials(home)
    async with db() as session, session.begin():
        repo = await _local_org(session)
        key = await credentials.find_api_key(session, stored.get("api_key", ""))
        secret = stored.get("api_key", "")
        if key is None or key.organization_id != repo.organization_id:
            _, secret = await orgs.create_key(repo, None, "local serve key", ["admin"])
        if await repo.find_project(local.project_slug) is None:
            await orgs.create_project(repo, None, local.project_slug)
    return write_credentials(
        home,
        {
            **stored,
            "url": local.data_plane_url,
            "control_url": local.control_url,
            "api_key": secret,
        },
    )
