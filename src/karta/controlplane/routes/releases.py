"""Releases of a project — publish (upload), list, activate, roll back — and its env vars."""

from __future__ import annotations

import asyncio
import re
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request, Response

from karta.controlplane import releases
from karta.controlplane.actor import Actor
from karta.controlplane.deps import ORG_ERRORS, Tx, require, transaction
from karta.controlplane.models import Project, ProjectEnvVar, Release
from karta.controlplane.permissions import Permission
from karta.controlplane.repository import OrgRepository
from karta.controlplane.repository_base import spelled_id
from karta.controlplane.schemas import Rollback, SetEnvVar
from karta.controlplane.secretbox import SecretBox, env_context
from karta.controlplane.views import EnvVarView, Listing, PublishedRelease, ReleaseView
from karta.core.clock import utcnow
from karta.core.env_names import reserved
from karta.core.errors import Conflict, KartaError, NotFound
from karta.core.http_errors import ErrorBody, error_responses
from karta.core.http_limits import Route

# Every route names a project (`ref`): a missing one is a 404, like an unknown organization.
router = APIRouter(
    prefix="/v1/projects/{ref}", tags=["releases"], responses={**ORG_ERRORS, **error_responses(422)}
)
Reader = Annotated[Actor, Depends(require(Permission.PROJECTS_READ))]
Publisher = Annotated[Actor, Depends(require(Permission.RELEASES_PUBLISH))]
Activator = Annotated[Actor, Depends(require(Permission.RELEASES_ACTIVATE))]
EnvReader = Annotated[Actor, Depends(require(Permission.ENV_READ))]
EnvWriter = Annotated[Actor, Depends(require(Permission.ENV_WRITE))]
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
# The upload streams to disk under its own bound (`release_max_bytes`), not the JSON limit.
UPLOAD = Route("POST", re.compile(r"/v1/projects/[^/]+/releases"))


class ReleaseInvalid(KartaError):
    status = 422
    code = "release_invalid"


class ReleaseRefused(ErrorBody):
    """A publish's 422: `release_invalid` carries the failed release (recorded, never active)."""

    release: PublishedRelease | None = None


class ReleaseFailed(Conflict):
    code = "release_failed"


class NothingToRollBackTo(Conflict):
    code = "no_previous_release"


class EnvVarNotFound(NotFound):
    code = "env_var_not_found"


class InvalidEnvName(KartaError):
    status = 422
    code = "invalid_env_name"


def public_release(release: Release, project: Project) -> dict[str, Any]:
    return {
        "id": release.id,
        "object": "release",
        "project": project.slug,
        "version": release.version,
        "name": f"v{release.version}",
        "digest": f"sha256:{release.digest}",
        "size": release.size,
        "status": release.status,
        "active": project.active_release_id == release.id,
        "harness": release.harness,
        "app_name": release.app_name,
        "agents": release.agents,
        "build_log": release.build_log,
        "created_by": release.created_by,
        "created_at": release.created_at.isoformat(),
    }


def parse_version(text: str) -> int:
    version = spelled_id(text[1:] if text[:1] in ("v", "V") else text)
    if version is None:
        raise NotFound(f"release {text!r} not found (versions look like v3)")
    return version


async def _activate(tx: Tx, project: Project, release: Release, action: str) -> None:
    """Flip the pointer (the project row is locked by the caller) and audit it."""
    if release.status != "ready":
        raise ReleaseFailed(f"v{release.version} failed validation and cannot be activated")
    previous = await tx.repo.find_release(project.id, release_id=project.active_release_id or 0)
    project.active_release_id = release.id
    await tx.audit(
        action,
        "release",
        release.id,
        project=project.slug,
        version=release.version,
        previous=previous.version if previous else None,
    )


@router.post(
    "/releases",
    status_code=201,
    response_model=PublishedRelease,
    responses={
        200: {
            "model": PublishedRelease,
            "description": "the same content was published before (`created: false`)",
        },
        413: {"model": ErrorBody, "description": "archive_too_large"},
        422: {"model": ReleaseRefused, "description": "release_invalid (recorded as failed)"},
    },
)
async def publish(
    ref: str,
    request: Request,
    response: Response,
    actor: Publisher,
    activate: Annotated[bool, Query(description="activate when valid")] = True,
) -> dict[str, Any]:
    """Upload a release archive (a gzip'd tar, as the request body)."""
    settings = request.app.state.settings
    async with transaction(request, actor) as tx:
        project = await tx.repo.project(ref)
        bound = {v.name for v in await tx.repo.env_vars(project.id)}
    upload = await releases.receive(
        request.stream(), settings.artifacts / "tmp", settings.release_max_bytes
    )
    try:
        checked = await asyncio.to_thread(releases.validate, upload.path, bound, project.slug)
        async with transaction(request, actor) as tx:
            project = await tx.repo.project(ref, lock=True)
            release = await tx.repo.ready_release_with_digest(project.id, upload.digest)
            created = release is None
            if release is None:
                release = await _record(tx, project, upload, checked)
                if checked.ok:
                    await asyncio.to_thread(request.app.state.artifacts.put, upload)
            ready = release.status == "ready"
            switch = ready and activate and project.active_release_id != release.id
            if switch:
                await _activate(tx, project, release, "release.activated")
            view = {**public_release(release, project), "created": created}
    finally:
        upload.path.unlink(missing_ok=True)
    if not ready:
        raise ReleaseInvalid(checked.problem or "the release is invalid", release=view)
    if switch:
        await request.app.state.planes.invalidate(actor.organization_id)
    response.status_code = 201 if created else 200
    return view


async def _record(
    tx: Tx, project: Project, upload: releases.Upload, checked: releases.Validation
) -> Release:
    """A new version of the project (its row is locked by the caller), ready or failed."""
    release = Release(
        project_id=project.id,
        version=await tx.repo.latest_version(project.id) + 1,
        digest=upload.digest,
        size=upload.size,
        status="ready" if checked.ok else "failed",
        harness=checked.harness,
        app_name=checked.app_name,
        agents=checked.agents,
        build_log="\n".join(checked.log),
        created_by=tx.actor.actor_id,
        created_at=utcnow(),
    )
    tx.repo.add(release)
    await tx.session.flush()
    await tx.audit(
        "release.published",
        "release",
        release.id,
        project=project.slug,
        version=release.version,
        digest=release.digest,
        status=release.status,
    )
    return release


@router.get("/releases", response_model=Listing[ReleaseView])
async def list_releases(ref: str, request: Request, actor: Reader) -> dict[str, Any]:
    async with transaction(request, actor) as tx:
        project = await tx.repo.project(ref)
        rows = await tx.repo.releases(project.id)
        return {"data": [public_release(r, project) for r in rows]}


@router.get("/releases/{version}", response_model=ReleaseView)
async def get_release(ref: str, version: str, request: Request, actor: Reader) -> dict[str, Any]:
    async with transaction(request, actor) as tx:
        project = await tx.repo.project(ref)
        return public_release(await tx.repo.release(project.id, parse_version(version)), project)


@router.post(
    "/releases/{version}/activate", response_model=ReleaseView, responses=error_responses(409)
)
async def activate_release(
    ref: str, version: str, request: Request, actor: Activator
) -> dict[str, Any]:
    async with transaction(request, actor, invalidate_planes=True) as tx:
        project = await tx.repo.project(ref, lock=True)
        release = await tx.repo.release(project.id, parse_version(version))
        if project.active_release_id != release.id:
            await _activate(tx, project, release, "release.activated")
        return public_release(release, project)


@router.post("/rollback", response_model=ReleaseView, responses=error_responses(409))
async def rollback(
    ref: str,
    request: Request,
    actor: Activator,
    body: Annotated[Rollback | None, Body()] = None,
) -> dict[str, Any]:
    """Back to `to`, or to the newest ready release older than the active one."""
    async with transaction(request, actor, invalidate_planes=True) as tx:
        project = await tx.repo.project(ref, lock=True)
        if body is not None and body.to is not None:
            target = await tx.repo.release(project.id, parse_version(str(body.to)))
        else:
            current = await tx.repo.find_release(
                project.id, release_id=project.active_release_id or 0
            )
            older = [
                r
                for r in await tx.repo.releases(project.id)
                if r.status == "ready" and (current is None or r.version < current.version)
            ]
            if not older:
                raise NothingToRollBackTo("there is no earlier ready release to roll back to")
            target = older[-1]
        if project.active_release_id != target.id:
            await _activate(tx, project, target, "release.rolled_back")
        return public_release(target, project)


# --- env vars ------------------------------------------------------------------------------------


def _public_var(var: ProjectEnvVar) -> dict[str, Any]:
    return {
        "name": var.name,
        "object": "env_var",
        "value_hint": f"…{var.hint}" if var.hint else "…",
        "updated_at": var.updated_at.isoformat(),
    }


@router.get("/env", response_model=Listing[EnvVarView])
async def list_env(ref: str, request: Request, actor: EnvReader) -> dict[str, Any]:
    """Names and a hint of each value; values are never shown back in full."""
    async with transaction(request, actor) as tx:
        project = await tx.repo.project(ref)
        return {"data": [_public_var(v) for v in await tx.repo.env_vars(project.id)]}


@router.put("/env/{name}", response_model=EnvVarView)
async def set_env(
    ref: str, name: str, body: SetEnvVar, request: Request, actor: EnvWriter
) -> dict[str, Any]:
    if not ENV_NAME.match(name):
        raise InvalidEnvName(f"{name!r} is not an env var name (letters, digits and _)")
    if reserved(name):
        raise InvalidEnvName(
            f"{name} is reserved: Karta sets it (or it steers the harness, its model endpoint "
            "or the loader), so a project cannot"
        )
    box = request.app.state.secretbox
    async with transaction(request, actor, invalidate_planes=True) as tx:
        project = await tx.repo.project(ref)
        var = await tx.repo.env_var(project.id, name)
        if var is None:
            var = ProjectEnvVar(project_id=project.id, name=name)
            tx.repo.add(var)
        sealed = box.seal(body.value, env_context(project.organization_id, project.id, name))
        var.ciphertext, var.key_id = sealed.blob, sealed.key_id
        # A hint only for long values, so short secrets are not half revealed.
        var.hint = body.value[-2:] if len(body.value) >= 12 else None
        var.updated_at = utcnow()
        await tx.session.flush()
        await tx.audit("env.set", "env_var", var.id, project=project.slug, name=name)
        return _public_var(var)


@router.delete("/env/{name}", status_code=204)
async def unset_env(ref: str, name: str, request: Request, actor: EnvWriter) -> Response:
    async with transaction(request, actor, invalidate_planes=True) as tx:
        project = await tx.repo.project(ref)
        var = await tx.repo.env_var(project.id, name)
        if var is None:
            raise EnvVarNotFound(f"{name} is not set on {project.slug}")
        await tx.session.delete(var)
        await tx.audit("env.unset", "env_var", var.id, project=project.slug, name=name)
    return Response(status_code=204)


async def project_env(repo: OrgRepository, box: SecretBox, project: Project) -> dict[str, str]:
    """Decrypted env of a project, for the data plane's harness processes."""
    return {
        v.name: box.open(
            v.ciphertext, env_context(project.organization_id, project.id, v.name), v.key_id
        )
        for v in await repo.env_vars(project.id)
    }
