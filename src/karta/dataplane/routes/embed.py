"""The embed edge: what a page on a builder's site asks of Karta with a publishable key and
no credential — its widget's config, and a short-lived session token for its end user.

The origin is always the request's real `Origin` header (a browser sets it; a page cannot),
never one named in the body; a same-origin GET, which browsers send without one, is the data
plane's own origin. Both routes are rate limited per client IP and origin. Minting is
the control plane's (`/internal/embed/session_tokens`); its refusals reach the page as they are.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse
from pydantic import Field

from karta.core import embed
from karta.core import internal_api as api
from karta.core.http_errors import error_responses
from karta.dataplane.embed import EmbedEdge, own_origin
from karta.dataplane.schemas import Strict

router = APIRouter(prefix="/v1/embed", tags=["embed"])
CONFIG_MAX_AGE = 60


class EmbedTokenRequest(Strict):
    embed_key: str = Field(max_length=200, description="the publishable key, `pk_live_…`")
    user_id: str | None = Field(
        default=None, max_length=200, description="a signed-in user of the site, with…"
    )
    identity_token: str | None = Field(
        default=None,
        max_length=200,
        description="…the hex HMAC-SHA256 of `user_id` under the key's identity secret",
    )
    anonymous_id: str | None = Field(
        default=None,
        max_length=100,
        description="an anonymous browser's id from an earlier token (it keeps its sessions)",
    )
    ttl_seconds: int | None = Field(default=None, ge=1, le=3600)


class EmbedFlags(Strict):
    anonymous: bool = Field(description="anonymous end users may chat")
    hosted_page: bool


class EmbedConfig(Strict):
    object: str = "embed_config"
    project: api.EmbedProject
    theme: dict[str, str]
    flags: EmbedFlags


def _edge(request: Request) -> EmbedEdge:
    edge: EmbedEdge = request.app.state.embed
    return edge


def _origin(request: Request, edge: EmbedEdge, route: str) -> str:
    """The page's origin: its `Origin` header. Browsers leave that out of same-origin GETs
    (the hosted page's), and say `Sec-Fetch-Site: same-origin` instead; a page can set
    neither header."""
    origin = request.headers.get("origin")
    if not origin and request.headers.get("sec-fetch-site") == "same-origin":
        origin = own_origin(request.scope)
    if not origin:
        raise embed.MissingOrigin("no Origin header: this route is for browsers")
    edge.limiter.hit(route, request.client.host if request.client else "", origin)
    return origin


@router.post(
    "/session-tokens",
    status_code=201,
    response_model=api.EmbedToken,
    responses=error_responses(400, 402, 403, 404, 422, 429, 503),
)
async def session_tokens(body: EmbedTokenRequest, request: Request) -> JSONResponse:
    """A session token for the key's project, valid on `/v1/projects/{ref}/…` for 15 minutes
    (at most an hour). With `user_id` and a matching `identity_token` the token's `sub` is that
    verified user; otherwise the browser is anonymous, `anon:<anonymous_id>`."""
    edge = _edge(request)
    origin = _origin(request, edge, "session-tokens")
    answer = await edge.mint(
        api.MintEmbedToken(
            embed_key=body.embed_key,
            origin=origin,
            own_origin=embed.origin_or_none(origin) == own_origin(request.scope),
            user_id=body.user_id,
            identity_token=body.identity_token,
            anonymous_id=body.anonymous_id,
            ttl_seconds=body.ttl_seconds,
        )
    )
    if isinstance(answer, api.EmbedRefusal):
        refusal = {"error": answer.error, "message": answer.message}
        if answer.reason is not None:
            refusal["reason"] = answer.reason
        return JSONResponse(refusal, status_code=answer.status)
    return JSONResponse(answer.model_dump(mode="json", exclude={"minted"}), status_code=201)


@router.get(
    "/config",
    response_model=EmbedConfig,
    responses=error_responses(400, 403, 404, 422, 429, 503),
)
async def config(
    request: Request,
    embed_key: Annotated[str | None, Query(max_length=200)] = None,
    header_key: Annotated[str | None, Header(alias="X-Karta-Embed-Key", max_length=200)] = None,
) -> Any:
    """What a page may know before it chats: the project's name, the widget's theme and
    flags. Never the key's origins or secrets."""
    edge = _edge(request)
    origin = _origin(request, edge, "config")
    key = await edge.key(embed_key or header_key or "")
    if key is None:
        raise embed.UnknownEmbedKey("no such embed key")
    embed.check_admitted(
        key.enabled, key.allowed_origins, key.hosted_page, origin, own_origin(request.scope)
    )
    body = EmbedConfig(
        project=key.project,
        theme=key.theme,
        flags=EmbedFlags(anonymous=key.allow_anonymous, hosted_page=key.hosted_page),
    )
    return JSONResponse(
        body.model_dump(mode="json"),
        headers={"Cache-Control": f"public, max-age={CONFIG_MAX_AGE}"},
    )
