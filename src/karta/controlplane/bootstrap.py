"""The embedded deployment's first start (`karta serve`): a local organization, its admin key
and the served folder's project. `karta serve` saves the key to `$KARTA_HOME/credentials.json`
once both planes listen."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from karta.controlplane import credentials, orgs
from karta.controlplane.repository import OrgRepository
from karta.core.credentials_file import read_credentials, server_entry

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


async def ensure_local(db: async_sessionmaker, home: Path, local: LocalBootstrap) -> str:
    """The local org's admin key: the one saved for this server (or the default one) while it
    is still a live key of the local org, otherwise a new one."""
    stored = read_credentials(home)
    secret = str(
        server_entry(stored, local.data_plane_url).get("api_key") or stored.get("api_key") or ""
    )
    async with db() as session, session.begin():
        repo = await _local_org(session)
        key = await credentials.find_api_key(session, secret)
        if key is None or key.organization_id != repo.organization_id:
            _, secret = await orgs.create_key(repo, None, "local serve key", ["admin"])
        if await repo.find_project(local.project_slug) is None:
            await orgs.create_project(repo, None, local.project_slug)
    return secret
