"""Signing up, logging in, and the caller's own view: who am I, which organizations."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from karta.controlplane import credentials, orgs, security, throttle
from karta.controlplane.actor import Actor
from karta.controlplane.deps import (
    ORG_ERRORS,
    Caller,
    request_context,
    require,
    transaction,
    user_only,
)
from karta.controlplane.models import User, UserToken
from karta.controlplane.permissions import Permission
from karta.controlplane.repository import OrgRepository
from karta.controlplane.schemas import CreateOrg, Login, Signup
from karta.controlplane.timekeeping import clock_of
from karta.controlplane.views import Listing, LoggedIn, Me, OrgView, OrgWithRole, Signed
from karta.core.clock import utcnow
from karta.core.errors import Conflict, Forbidden, Unauthorized
from karta.core.http_errors import error_responses

router = APIRouter(prefix="/v1", tags=["account"])


class EmailTaken(Conflict):
    code = "email_taken"


class SignupDisabled(Forbidden):
    code = "signup_disabled"


class SlugTaken(Conflict):
    code = "organization_exists"


def _user(user: User) -> dict[str, Any]:
    return {"id": user.id, "object": "user", "email": user.email}


@router.post(
    "/signup", status_code=201, response_model=Signed, responses=error_responses(403, 409, 422)
)
async def signup(body: Signup, request: Request) -> dict[str, Any]:
    """A user, a new organization they own and its first admin key (the secret is shown once)."""
    if not request.app.state.settings.signup_enabled:
        raise SignupDisabled("signup is turned off on this deployment")
    password_hash = security.hash_secret(body.password)
    async with request.app.state.db() as session, session.begin():
        if await credentials.user_by_email(session, body.email) is not None:
            raise EmailTaken("an account with this email already exists")
        user = User(email=body.email, password_hash=password_hash, created_at=utcnow())
        session.add(user)
        await session.flush()
        actor = Actor("user", None, frozenset(), request_context(request), user_id=user.id)
        slug = await orgs.unique_slug(session, body.org_name)
        repo = await orgs.create_organization(session, body.org_name, slug, user.id, actor)
        key, secret = await orgs.create_key(repo, actor, "default", ["admin"])
        org = await repo.organization()
    return {
        "user": _user(user),
        "organization": orgs.public_org(org),
        "api_key": orgs.public_key(key),
        "secret": secret,
    }


@router.post("/auth/login", response_model=LoggedIn, responses=error_responses(401, 422, 429))
async def login(body: Login, request: Request) -> dict[str, Any]:
    settings = request.app.state.settings
    email, ip = body.email.strip().lower(), request_context(request).ip
    async with request.app.state.db() as session, session.begin():
        now = clock_of(session).now()
        await throttle.check(session, email, ip, now)
        user = await credentials.user_by_email(session, email)
        # The hash is checked even for an unknown email, so timing does not reveal accounts.
        ok = security.verify_secret(user.password_hash if user else None, body.password)
        if user is None or not ok:
            throttle.failed(session, email, ip, now)
        else:
            await throttle.succeeded(session, email, now)
            token = security.new_user_token()
            expires = now + timedelta(seconds=settings.login_ttl)
            session.add(
                UserToken(
                    user_id=user.id,
                    token_hash=security.digest(token),
                    created_at=now,
                    expires_at=expires,
                )
            )
    if user is None or not ok:  # outside the transaction: the failure is recorded
        raise Unauthorized("wrong email or password")
    return {"token": token, "expires_at": expires.isoformat(), "user": _user(user)}


@router.get("/me", response_model=Me, responses=error_responses(401, 404))
async def me(request: Request, actor: Caller) -> dict[str, Any]:
    async with request.app.state.db() as session:
        if actor.kind == "api_key":
            assert actor.organization_id is not None
            org = await OrgRepository(session, actor.organization_id).organization()
            return {
                "kind": "api_key",
                "api_key_id": actor.api_key_id,
                "organization": orgs.public_org(org),
                "permissions": sorted(actor.permissions),
            }
        user = await session.get(User, actor.user_id)
        assert user is not None
        joined = await credentials.memberships(session, user.id)
    return {
        "kind": "user",
        "user": _user(user),
        "organizations": [{**orgs.public_org(o), "role": m.role} for m, o in joined],
    }


@router.get("/orgs", response_model=Listing[OrgWithRole], responses=error_responses(401, 403, 404))
async def list_orgs(request: Request, actor: Caller) -> dict[str, Any]:
    user_id = user_only(actor, "organizations")
    async with request.app.state.db() as session:
        joined = await credentials.memberships(session, user_id)
    return {"data": [{**orgs.public_org(o), "role": m.role} for m, o in joined]}


@router.post(
    "/orgs",
    status_code=201,
    response_model=OrgWithRole,
    responses=error_responses(401, 403, 404, 409, 422),
)
async def create_org(body: CreateOrg, request: Request, actor: Caller) -> dict[str, Any]:
    user_id = user_only(actor, "organizations")
    async with request.app.state.db() as session, session.begin():
        if body.slug is not None:
            if await credentials.organization_by_slug(session, body.slug) is not None:
                raise SlugTaken(f"the organization slug {body.slug!r} is taken")
            slug = body.slug
        else:
            slug = await orgs.unique_slug(session, body.name)
        repo = await orgs.create_organization(session, body.name, slug, user_id, actor)
        org = await repo.organization()
    return {**orgs.public_org(org), "role": "owner"}


@router.get("/org", response_model=OrgView, responses=ORG_ERRORS)
async def current_org(
    request: Request, actor: Annotated[Actor, Depends(require(Permission.ORG_READ))]
) -> dict[str, Any]:
    async with transaction(request, actor) as tx:
        return orgs.public_org(await tx.repo.organization())
