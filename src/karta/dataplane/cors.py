"""CORS for the routes browsers call: the embed edge (`/v1/embed/…`) and the project route
family (`/v1/projects/{ref}/…`). Everything else stays same-origin only.

- A preflight (`OPTIONS` with `Access-Control-Request-Method`) is answered here, 204, before
  routing or authentication: a preflight carries no credential.
- The embed edge echoes any origin: it reads the real `Origin` itself and refuses, with a JSON
  body the page can read, the ones its key does not allow.
- A project route echoes only an origin that a live embed key of a project of that ref allows
  (or the data plane's own, when one of them serves the hosted page); an unknown origin gets no
  `Access-Control-Allow-Origin`, so the browser keeps the answer from the page.
- The headers are added to every answer of those routes, errors included, with `Vary: Origin`.
  Never `Access-Control-Allow-Credentials`: browsers send bearer tokens, never cookies.

Pure ASGI, outermost, so even the request limits' 413 and 431 carry the headers.
"""

from __future__ import annotations

import re

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from karta.core import embed
from karta.dataplane.embed import EmbedEdge

EMBED_PREFIX = "/v1/embed/"
PROJECT_ROUTE = re.compile(r"/v1/projects/([A-Za-z0-9][A-Za-z0-9_-]{0,63})(?:/.*)?")
ALLOW_METHODS = "GET, POST, PUT, DELETE, OPTIONS"
ALLOW_HEADERS = "Authorization, Content-Type, Last-Event-ID, X-Karta-Embed-Key"
EXPOSE_HEADERS = "Retry-After, Content-Type"
MAX_AGE = "600"


class BrowserCORS:
    def __init__(self, app: ASGIApp, edge: EmbedEdge) -> None:
        self.app = app
        self.edge = edge

    async def _allowed(self, scope: Scope, origin: str) -> bool:
        path: str = scope["path"]
        if path.startswith(EMBED_PREFIX):
            return True
        match = PROJECT_ROUTE.fullmatch(path)
        canonical = embed.origin_or_none(origin)
        if match is None or canonical is None:
            return False
        return await self.edge.allows(match.group(1), canonical, scope)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not (path.startswith(EMBED_PREFIX) or PROJECT_ROUTE.fullmatch(path)):
            await self.app(scope, receive, send)
            return
        origin = dict(scope["headers"]).get(b"origin", b"").decode("latin-1")
        allowed = bool(origin) and await self._allowed(scope, origin)
        cors = {"Access-Control-Allow-Origin": origin} if allowed else {}
        requested = dict(scope["headers"]).get(b"access-control-request-method")
        if scope["method"] == "OPTIONS" and requested is not None:
            preflight = {"Vary": "Origin", **cors}
            if allowed:
                preflight.update(
                    {
                        "Access-Control-Allow-Methods": ALLOW_METHODS,
                        "Access-Control-Allow-Headers": ALLOW_HEADERS,
                        "Access-Control-Max-Age": MAX_AGE,
                    }
                )
            await send(
                {
                    "type": "http.response.start",
                    "status": 204,
                    "headers": [(k.lower().encode(), v.encode()) for k, v in preflight.items()],
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return
        if allowed:
            cors["Access-Control-Expose-Headers"] = EXPOSE_HEADERS

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.add_vary_header("Origin")
                for name, value in cors.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, with_headers)
