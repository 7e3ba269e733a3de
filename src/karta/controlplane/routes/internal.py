"""The internal API the data plane calls: key validation, project lookup, active releases and
their archives, project env vars, provider keys and model settings, budget checks, usage and
audit ingestion, and the embed edge (publishable keys, browser session tokens, CORS origins,
hosted pages). Its bodies and answers are the planes' contract (`karta.core.internal_api`).
Guarded by the service token and allowlists; absent from OpenAPI."""

from __future__ import annotations

from datetime import UTC
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse

from karta.controlplane import audit, budgets, credentials, embed_keys, provider_keys, usage
from karta.controlplane.actor import Actor, RequestContext
from karta.controlplane.models import Project, Release
from karta.controlplane.repository import OrgRepository
from karta.controlplane.routes.releases import project_env
from karta.core import internal_api as api
from karta.core.embed import UnknownEmbedKey
from karta.core.errors import KartaError, NoActiveRelease, NotFound, Unavailable
from karta.core.internal_auth import require_service
from karta.core.money import TokenUsage

router = APIRouter(dependencies=[Depends(require_service)], include_in_schema=False)
OrgId = Annotated[int, Query(ge=1, le=api.MAX_ID)]  # the organization whose data is asked for


@router.get(api.WHOAMI)
async def whoami() -> api.ServicePrincipal:
    return api.ServicePrincipal(principal_kind="service")


@router.post(api.VALIDATE_KEY, response_model=api.KeyValidation)
async def validate_key(
    body: api.ValidateKey, request: Request
) -> api.KeyRefused | api.KeyValidated:
    async with request.app.state.reads() as session:
        key = await credentials.find_api_key(session, body.key)
        if key is None:
            return api.KeyRefused()
        repo = OrgRepository(session, key.organization_id)
        org = await repo.organization()
        reason = await budgets.exhausted(repo, key)
    await credentials.note_use(request.app.state.db, key)
    return api.KeyValidated(
        organization_id=org.id,
        organization_slug=org.slug,
        api_key_id=key.id,
        api_key_prefix=key.prefix,
        scopes=key.scopes,
        budget_ok=reason is None,
        budget_reason=reason,
    )


@router.get(api.PROJECT)
async def find_project(ref: str, request: Request, organization_id: OrgId) -> api.ProjectInfo:
    async with request.app.state.reads() as session:
        project = await OrgRepository(session, organization_id).project(ref)
    return api.ProjectInfo(
        id=project.id,
        slug=project.slug,
        name=project.name,
        organization_id=project.organization_id,
        created_at=project.created_at,
    )


async def _active(repo: OrgRepository, ref: str) -> tuple[Project, Release]:
    project = await repo.project(ref)
    release = await repo.find_release(project.id, release_id=project.active_release_id or 0)
    if release is None:
        raise NoActiveRelease(f"project {project.slug!r} has no active release")
    return project, release


def _release_info(project: Project, release: Release) -> api.ReleaseInfo:
    return api.ReleaseInfo(
        project_id=project.id,
        project_slug=project.slug,
        organization_id=project.organization_id,
        version=release.version,
        digest=release.digest,
        harness=release.harness,
        status=release.status,
    )


@router.get(api.ACTIVE_RELEASE)
async def active_release(ref: str, request: Request, organization_id: OrgId) -> api.ReleaseInfo:
    async with request.app.state.reads() as session:
        return _release_info(*await _active(OrgRepository(session, organization_id), ref))


@router.get(api.RELEASE)
async def pinned_release(
    ref: str, version: int, request: Request, organization_id: OrgId
) -> api.ReleaseInfo:
    async with request.app.state.reads() as session:
        repo = OrgRepository(session, organization_id)
        project = await repo.project(ref)
        return _release_info(project, await repo.release(project.id, version))


@router.get(api.ARTIFACT)
async def artifact(digest: str, request: Request, organization_id: OrgId) -> FileResponse:
    """A release archive, only to a caller naming an org that published it."""
    async with request.app.state.reads() as session:
        held = await OrgRepository(session, organization_id).holds_digest(digest)
    store = request.app.state.artifacts
    if not held or not store.path(digest).is_file():
        raise NotFound(f"artifact {digest} not found")
    return FileResponse(store.path(digest), media_type="application/gzip")


@router.get(api.PROJECT_ENV)
async def env(ref: str, request: Request, organization_id: OrgId) -> api.ProjectEnv:
    async with request.app.state.reads() as session:
        repo = OrgRepository(session, organization_id)
        project = await repo.project(ref)
        return api.ProjectEnv(env=await project_env(repo, request.app.state.secretbox, project))


@router.get(api.MODEL_ACCESS)
async def model_access(
    request: Request,
    organization_id: OrgId,
    project_id: Annotated[int | None, Query(ge=1, le=api.MAX_ID)] = None,
) -> api.ModelAccess:
    """The provider keys (decrypted) and model settings that serve a project's model calls."""
    async with request.app.state.reads() as session:
        repo = OrgRepository(session, organization_id)
        await repo.organization()
        if project_id is not None:
            await repo.project(str(project_id))
        return await provider_keys.model_access(repo, request.app.state.secretbox, project_id)


@router.post(api.BUDGET_CHECK, responses={402: {"model": api.BudgetRefusal}})
async def check_budget(body: api.BudgetCheck, request: Request) -> api.BudgetOk:
    """Admit a turn or a model call (200), or refuse it with 402 budget_exhausted."""
    capped = not request.app.state.settings.own_keys_outside_cost_cap
    pending = [
        budgets.Pending(
            item.api_key_id,
            item.model,
            _tokens(item),
            item.provider,
            capped or item.key_owner == "platform",
        )
        for item in body.pending
    ]
    async with request.app.state.reads() as session:
        repo = OrgRepository(session, body.organization_id)
        key = await repo.key(body.api_key_id) if body.api_key_id is not None else None
        anonymous_cap = False
        if body.embed_key_id is not None:
            embed_key = await repo.embed_key_by_id(body.embed_key_id)
            await embed_keys.check_anonymous_cap(repo, embed_key)
            anonymous_cap = embed_key.anonymous_cost_limit_cents is not None
        limited = await budgets.check(repo, request.app.state.prices, key, pending)
    return api.BudgetOk(ok=True, limited=limited or anonymous_cap)


@router.post(api.AUDIT_EVENTS)
async def report_audit(body: api.ReportedAuditBatch, request: Request) -> api.BatchResult:
    """Audit rows for what happens on the data plane (approvals decided). Only the actions the
    contract allows can be reported, so a data plane cannot forge control-plane mutations."""
    accepted, duplicates, rejected = 0, 0, []
    async with request.app.state.db() as session, session.begin():
        for event in body.events:
            repo = OrgRepository(session, event.organization_id)
            try:
                await repo.organization()
                if event.api_key_id is not None:
                    await repo.key(event.api_key_id)
            except NotFound:
                rejected.append(event.event_id)
                continue
            if await repo.reported_audit_event(event.event_id) is not None:
                duplicates += 1
                continue
            actor = Actor(
                event.actor_type,
                event.organization_id,
                frozenset(),
                RequestContext(event.request_id, event.ip),
                api_key_id=event.api_key_id,
                subject=event.subject,
            )
            await audit.record(
                repo,
                actor,
                event.action,
                event.resource_type,
                event.resource_id,
                client_event_id=event.event_id,
                occurred_at=event.occurred_at.isoformat(),
                reported=dict(event.details),
            )
            accepted += 1
    return api.BatchResult(accepted=accepted, duplicates=duplicates, rejected=rejected)


@router.post(api.USAGE_EVENTS)
async def ingest_usage(body: api.UsageBatch, request: Request) -> api.BatchResult:
    batch = [
        usage.Metered(
            event_id=e.event_id,
            organization_id=e.organization_id,
            api_key_id=e.api_key_id,
            project_id=e.project_id,
            session_id=e.session_id,
            turn_id=e.turn_id,
            model=e.model,
            embed_key_id=e.embed_key_id,
            usage=_tokens(e),
            occurred_at=e.occurred_at
            if e.occurred_at.tzinfo
            else e.occurred_at.replace(tzinfo=UTC),
            provider=e.provider,
            key_owner=e.key_owner,
        )
        for e in body.events
    ]
    capped = not request.app.state.settings.own_keys_outside_cost_cap
    async with request.app.state.db() as session, session.begin():
        result = await usage.ingest(
            session, request.app.state.prices, batch, own_keys_capped=capped
        )
    for org_id in result.crossed:
        await request.app.state.planes.invalidate(org_id)
    return api.BatchResult(
        accepted=result.accepted, duplicates=result.duplicates, rejected=result.rejected
    )


def _tokens(item: api.PendingUsage | api.UsageEvent) -> TokenUsage:
    return TokenUsage(
        item.input_tokens, item.output_tokens, item.cache_read_tokens, item.cache_write_tokens
    )


# --- the embed edge ------------------------------------------------------------------------------


@router.post(api.EMBED_KEY, response_model=api.EmbedKeyLookup)
async def resolve_embed_key(
    body: api.ResolveEmbedKey, request: Request
) -> api.EmbedKeyMissing | api.EmbedKeyInfo:
    async with request.app.state.reads() as session:
        key = await credentials.find_embed_key(session, body.embed_key)
        if key is None:
            return api.EmbedKeyMissing()
        repo = OrgRepository(session, key.organization_id)
        project = await repo.project_by_id(key.project_id)
        org = await repo.organization()
    return api.EmbedKeyInfo(
        embed_key_id=key.id,
        organization_id=key.organization_id,
        project_id=key.project_id,
        project=embed_keys.embed_project(org, project),
        enabled=key.enabled,
        allowed_origins=list(key.allowed_origins),
        hosted_page=key.hosted_page,
        allow_anonymous=key.allow_anonymous,
        theme=dict(key.theme),
    )


@router.post(api.EMBED_SESSION_TOKENS, response_model=api.EmbedMint)
async def mint_embed_token(
    body: api.MintEmbedToken, request: Request
) -> api.EmbedToken | api.EmbedRefusal:
    """A browser's session token, or the refusal the data plane passes on to it."""
    secret = request.app.state.settings.session_token_secret
    try:
        if not secret:
            raise Unavailable("session tokens are not configured (KARTA_SESSION_TOKEN_SECRET)")
        async with request.app.state.db() as session, session.begin():
            key = await credentials.find_embed_key(session, body.embed_key)
            if key is None:
                raise UnknownEmbedKey("no such embed key")
            repo = OrgRepository(session, key.organization_id)
            return await embed_keys.mint(repo, request.app.state.secretbox, secret, key, body)
    except KartaError as exc:
        reason = exc.extra.get("reason")
        return api.EmbedRefusal(
            status=exc.status,
            error=exc.code,
            message=exc.message,
            reason=reason if isinstance(reason, str) else None,
        )


@router.get(api.EMBED_ORIGINS)
async def embed_origins(
    request: Request, project: Annotated[str, Query(max_length=64)]
) -> api.EmbedOrigins:
    async with request.app.state.reads() as session:
        origins, hosted = await credentials.embed_origins(session, project)
    return api.EmbedOrigins(origins=sorted(origins), hosted_page=hosted)


@router.get(api.HOSTED_PAGE)
async def hosted_page(org: str, project: str, request: Request) -> api.HostedPage:
    """The key that serves `org/project`'s hosted chat page; 404 when it has none."""
    async with request.app.state.reads() as session:
        found = await credentials.organization_by_slug(session, org)
        if found is None:
            raise NotFound(f"no hosted page for {org}/{project}")
        repo = OrgRepository(session, found.id)
        row = await repo.find_project(project)
        key = await repo.hosted_page_key(row.id) if row is not None else None
        if row is None or key is None:
            raise NotFound(f"no hosted page for {org}/{project}")
        return api.HostedPage(
            embed_key=key.key,
            project=embed_keys.embed_project(found, row),
            theme=dict(key.theme),
        )
