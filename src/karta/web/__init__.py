"""What the planes serve to browsers: the chat widget (`widget/` at the repository's root,
built by `scripts/build-widget` into `dist/`), the hosted chat page, and the API explorer at
`/docs` with its Swagger UI assets served from here, never from a CDN.

`dist/` is generated (and not committed): `scripts/bootstrap` builds it from the widget's
sources and the pinned npm packages in package-lock.json.
"""

from __future__ import annotations

import html
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

from karta.core.errors import NotFound, Unavailable

DIST = Path(__file__).resolve().parent / "dist"
WIDGET = {"karta.js": "text/javascript", "client.mjs": "text/javascript"}
DOCS_ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon-32x32.png": "image/png",
}
# The hosted page runs nothing but the widget, and talks to nothing but its own origin.
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "connect-src 'self'; img-src 'self' data:; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'none'"
)


class NotBuilt(Unavailable):
    code = "widget_not_built"


def asset(name: str, kinds: dict[str, str]) -> FileResponse:
    """One built file (404 for a name that is none of `kinds`, 503 when not built)."""
    if name not in kinds:
        raise NotFound(f"no asset {name!r}")
    path = DIST / name
    if not path.is_file():
        raise NotBuilt("the browser assets are not built: run scripts/build-widget", retry_after=60)
    return FileResponse(
        path, media_type=kinds[name], headers={"Cache-Control": "public, max-age=300"}
    )


def install_docs(api: FastAPI) -> None:
    """`/docs`: Swagger UI over the app's OpenAPI document, its assets from `dist/`. The app
    must be made with `docs_url=None, redoc_url=None` (FastAPI's own load from a CDN)."""

    @api.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=api.openapi_url or "/openapi.json",
            title=f"{api.title} — API",
            swagger_js_url="/docs/assets/swagger-ui-bundle.js",
            swagger_css_url="/docs/assets/swagger-ui.css",
            swagger_favicon_url="/docs/assets/favicon-32x32.png",
        )

    @api.get("/docs/assets/{name}", include_in_schema=False)
    async def docs_asset(name: str) -> FileResponse:
        return asset(name, DOCS_ASSETS)


def hosted_page(embed_key: str, org: str, slug: str, name: str, theme: dict[str, str]) -> str:
    """The hosted chat page of a project: the widget, full page, under the project's name."""
    background = html.escape(theme.get("background", "#f5f5f4"), quote=True)
    attrs = {
        "embed-key": embed_key,
        "project": f"{org}/{slug}",
        "mode": "page",
        "title": name,
    }
    spelled = " ".join(f'{k}="{html.escape(v, quote=True)}"' for k, v in attrs.items())
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(name)} · Chat</title>
<style>html,body{{margin:0;height:100%;background:{background}}}karta-chat{{display:block;height:100%}}</style>
</head>
<body>
<karta-chat {spelled}></karta-chat>
<script src="/widget/v1/karta.js"></script>
</body>
</html>
"""
