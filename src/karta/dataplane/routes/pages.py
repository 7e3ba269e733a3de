"""What the data plane serves to browsers as pages and files: the widget bundle and its
headless client at `/widget/v1/…`, and each project's hosted chat page at `/{org}/{project}`.

A hosted page is the widget, full page, with the project's name and theme. It authenticates
like any page that embeds the widget: with the project's embed key that has `hosted_page` on,
from the data plane's own origin (which that flag admits). A project without such a key has no
hosted page (404).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import FileResponse, HTMLResponse

from karta import web
from karta.core.errors import NotFound
from karta.dataplane.embed import EmbedEdge

router = APIRouter(include_in_schema=False)
Slug = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")]


@router.get("/widget/v1/{name}")
async def widget(name: str) -> FileResponse:
    return web.asset(name, web.WIDGET)


@router.get("/{org}/{project}")
async def hosted_page(org: Slug, project: Slug, request: Request) -> HTMLResponse:
    edge: EmbedEdge = request.app.state.embed
    page = await edge.hosted_page(org, project)
    if page is None:
        raise NotFound(f"{org}/{project} has no hosted chat page")
    body = web.hosted_page(
        page.embed_key, page.project.organization, page.project.slug, page.project.name, page.theme
    )
    return HTMLResponse(
        body,
        headers={
            "Content-Security-Policy": web.PAGE_CSP,
            "Cache-Control": "no-store",
            "Referrer-Policy": "no-referrer",
            "X-Content-Type-Options": "nosniff",
        },
    )
