"""Publishable embed keys: creating and rotating them, what the API shows of them, and minting
a session token for a browser that presents one (`karta.core.embed` has the rules).

The identity secret is sealed at rest and shown once, when the key is created or rotated. The
anonymous spend cap counts the cost of the turns of the key's anonymous end users in the
current day or month (UTC); it is checked when a token is minted and before each such turn.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from karta.controlplane import audit, budgets
from karta.controlplane.actor import Actor
from karta.controlplane.models import EmbedKey, Organization, Project
from karta.controlplane.repository import OrgRepository
from karta.controlplane.secretbox import SecretBox
from karta.core import embed, session_tokens
from karta.core import internal_api as api
from karta.core.clock import utcnow
from karta.core.embed import AnonymousNotAllowed, IdentityInvalid, InvalidAnonymousId
from karta.core.end_users import check_end_user_id
from karta.core.errors import BudgetExhausted
from karta.core.money import Cents, Micros

ANONYMOUS_CAP = "anonymous_cost_limit"


def identity_context(key: EmbedKey) -> str:
    return f"embed_key:{key.organization_id}:{key.project_id}:{key.key}"


def seal_identity_secret(box: SecretBox, key: EmbedKey) -> str:
    """A fresh identity secret for `key` (its `key` set): stored sealed, returned once."""
    secret = embed.new_identity_secret()
    sealed = box.seal(secret, identity_context(key))
    key.identity_secret, key.identity_key_id = sealed.blob, sealed.key_id
    return secret


def identity_secret(box: SecretBox, key: EmbedKey) -> str:
    return box.open(key.identity_secret, identity_context(key), key.identity_key_id)


def public_embed_key(key: EmbedKey, project: Project) -> dict[str, Any]:
    return {
        "id": key.id,
        "object": "embed_key",
        "project": project.slug,
        "name": key.name,
        "key": key.key,
        "allowed_origins": list(key.allowed_origins),
        "theme": dict(key.theme),
        "enabled": key.enabled,
        "hosted_page": key.hosted_page,
        "allow_anonymous": key.allow_anonymous,
        "anonymous_cost_limit_cents": key.anonymous_cost_limit_cents,
        "anonymous_period": key.anonymous_period,
        "created_at": key.created_at.isoformat(),
        "updated_at": key.updated_at.isoformat(),
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
    }


async def create(
    repo: OrgRepository, box: SecretBox, actor: Actor, project: Project, fields: dict[str, Any]
) -> tuple[EmbedKey, str]:
    now = utcnow()
    key = EmbedKey(project_id=project.id, key=embed.new_embed_key(), created_at=now, updated_at=now)
    for name, value in fields.items():
        setattr(key, name, value)
    repo.add(key)
    secret = seal_identity_secret(box, key)
    await repo.session.flush()
    await audit_change(repo, actor, "embed_key.created", key, project, **fields)
    return key, secret


async def audit_change(
    repo: OrgRepository,
    actor: Actor,
    action: str,
    key: EmbedKey,
    project: Project,
    **details: Any,
) -> None:
    await audit.record(repo, actor, action, "embed_key", key.id, project=project.slug, **details)


def period_start(now: datetime, period: str) -> tuple[datetime, datetime]:
    """The current day or month (UTC) as [start, end)."""
    if period == "day":
        start = datetime(now.year, now.month, now.day, tzinfo=UTC)
        return start, start + timedelta(days=1)
    first, after = budgets.period_bounds(now.date())
    return budgets.at_midnight(first), budgets.at_midnight(after)


async def check_anonymous_cap(repo: OrgRepository, key: EmbedKey) -> None:
    """402 `budget_exhausted` (reason `anonymous_cost_limit`) once the key's anonymous end
    users have spent its cap this period."""
    if key.anonymous_cost_limit_cents is None:
        return
    start, end = period_start(repo.clock.now(), key.anonymous_period)
    spent = Micros(await repo.anonymous_spent(key.id, start, end))
    if spent >= Cents(key.anonymous_cost_limit_cents).to_micros():
        raise BudgetExhausted(ANONYMOUS_CAP, "this site's chat is over its spending limit")


def end_user(
    box: SecretBox, key: EmbedKey, body: api.MintEmbedToken
) -> tuple[str, bool, str | None]:
    """The token's `sub`, whether it is verified, and the anonymous id the browser keeps."""
    if body.user_id is not None or body.identity_token is not None:
        if body.user_id is None or body.identity_token is None:
            raise IdentityInvalid("send user_id and identity_token together")
        user_id = check_end_user_id(body.user_id)
        if not embed.identity_matches(identity_secret(box, key), user_id, body.identity_token):
            raise IdentityInvalid("the identity token does not match the user id")
        return user_id, True, None
    if not key.allow_anonymous:
        raise AnonymousNotAllowed("this site's chat needs a signed-in user (identity token)")
    anonymous_id = body.anonymous_id or embed.new_anonymous_id()
    try:
        return embed.anonymous_sub(anonymous_id), False, anonymous_id
    except ValueError as exc:
        raise InvalidAnonymousId(str(exc)) from exc


def embed_project(org: Organization, project: Project) -> api.EmbedProject:
    return api.EmbedProject(organization=org.slug, slug=project.slug, name=project.name)


async def mint(
    repo: OrgRepository, box: SecretBox, secret: str, key: EmbedKey, body: api.MintEmbedToken
) -> api.EmbedToken:
    """A session token for the browser, or the refusal that says why not."""
    own = embed.origin_or_none(body.origin) if body.own_origin else None
    embed.check_admitted(key.enabled, key.allowed_origins, key.hosted_page, body.origin, own)
    sub, verified, anonymous_id = end_user(box, key, body)
    reason = await budgets.exhausted(repo)
    if reason:
        raise BudgetExhausted(reason)
    if not verified:
        await check_anonymous_cap(repo, key)
    org = await repo.organization()
    project = await repo.project_by_id(key.project_id)
    exp = session_tokens.expiry(body.ttl_seconds or session_tokens.DEFAULT_TTL)
    claims = session_tokens.SessionClaims(
        org_id=org.id,
        org_slug=org.slug,
        project_id=project.id,
        project_slug=project.slug,
        exp=exp,
        sub=sub,
        embed_key_id=None if verified else key.id,
    )
    return api.EmbedToken(
        token=session_tokens.mint(secret, claims),
        expires_at=datetime.fromtimestamp(exp, UTC),
        sub=sub,
        verified=verified,
        anonymous_id=anonymous_id,
        project=embed_project(org, project),
    )
