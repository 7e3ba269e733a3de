"""Request dependencies of the management API: who is calling (`caller`), whether they may
(`require`), and a transaction scoped to their organization (`Tx`)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from karta.controlplane import audit, credentials, permissions
from karta.controlplane.actor import Actor, RequestContext
from karta.controlplane.permissions import Permission
from karta.controlplane.repository import OrgRepository
from karta.core.errors import BadRequest, Forbidden, NotFound, Unauthorized
from karta.core.http_errors import error_responses

ORG_HEADER = "karta-org"
# What resolving `require(...)` can answer on any route of an organization: no credential (401),
# no organization chosen (400), a permission missing (403), a `Karta-Org` not joined (404).
ORG_ERRORS = error_responses(400, 401, 403, 404)


class OrganizationRequired(BadRequest):
    code = "organization_required"


def request_context(request: Request) -> RequestContext:
    request_id = request.headers.get("x-request-id") or f"req_{secrets.token_urlsafe(12)}"
    return RequestContext(
        request_id=request_id[:64], ip=request.client.host if request.client else None
    )


def bearer(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("missing bearer credential: send 'Authorization: Bearer …'")
    return token


async def _user_actor(
    session: AsyncSession, request: Request, user_id: int, ctx: RequestContext
) -> Actor:
    joined = await credentials.memberships(session, user_id)
    wanted = request.headers.get(ORG_HEADER)
    if wanted:
        chosen = [(m, o) for m, o in joined if o.slug == wanted]
        if not chosen:
            raise NotFound(f"organization {wanted!r} not found")
    else:
        chosen = joined if len(joined) == 1 else []
    if not chosen:
        return Actor("user", None, frozenset(), ctx, user_id=user_id)
    membership, org = chosen[0]
    return Actor(
        "user",
        org.id,
        permissions.for_role(membership.role),
        ctx,
        user_id=user_id,
        role=membership.role,
    )


async def caller(request: Request) -> Actor:
    token = bearer(request)
    ctx = request_context(request)
    reads: async_sessionmaker = request.app.state.reads
    async with reads() as session:
        user = await credentials.find_user_by_token(session, token)
        if user is not None:
            return await _user_actor(session, request, user.id, ctx)
        key = await credentials.find_api_key(session, token)
    if key is None:
        raise Unauthorized("invalid, expired or revoked credential")
    await credentials.note_use(request.app.state.db, key)
    return Actor(
        "api_key",
        key.organization_id,
        permissions.for_scopes(list(key.scopes)),
        ctx,
        api_key_id=key.id,
    )


Caller = Annotated[Actor, Depends(caller)]


def user_only(actor: Actor, has: str) -> int:
    """The caller's user id; an API key belongs to an organization, not to a person, so it
    has no organizations or invitations of its own (`has` names what it lacks)."""
    if actor.kind != "user" or actor.user_id is None:
        raise Forbidden(f"only a logged-in user has {has}: use 'karta login'")
    return actor.user_id


def require(permission: Permission) -> Callable[[Request], Awaitable[Actor]]:
    async def dependency(request: Request) -> Actor:
        actor = await caller(request)
        if actor.organization_id is None:
            raise OrganizationRequired(
                f"name the organization with the '{ORG_HEADER}' header (you belong to several)"
                if actor.kind == "user"
                else "this credential has no organization"
            )
        if not actor.may(permission):
            raise Forbidden(
                f"this credential lacks the '{permission}' permission", permission=str(permission)
            )
        return actor

    return dependency


@dataclass
class Tx:
    """One transaction in the caller's organization: the repository plus audit recording."""

    actor: Actor
    repo: OrgRepository

    @property
    def session(self) -> AsyncSession:
        return self.repo.session

    async def audit(
        self, action: str, resource_type: str, resource_id: object = None, **details: Any
    ) -> None:
        await audit.record(self.repo, self.actor, action, resource_type, resource_id, **details)


@asynccontextmanager
async def transaction(
    request: Request, actor: Actor, *, invalidate_planes: bool = False
) -> AsyncIterator[Tx]:
    """With `invalidate_planes`, a change the data planes must see at once: when it has been
    committed, they are told to drop what they cached of the organization."""
    assert actor.organization_id is not None, "require() guarantees an organization"
    db: async_sessionmaker = request.app.state.db
    async with db() as session, session.begin():
        yield Tx(actor, OrgRepository(session, actor.organization_id))
    if invalidate_planes:
        await request.app.state.planes.invalidate(actor.organization_id)
