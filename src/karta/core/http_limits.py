"""What one request may make a plane hold, checked before any route (or authentication) runs:
at most `max_headers` headers of `max_header_bytes` in all (else 431), and a body of at most
`max_body_bytes` (else 413). The body is refused by its `Content-Length` before a byte of it
is read, and a chunked body as soon as the bytes streamed in pass the limit, so an oversized
request never sits in memory whole.

Because the body passes through here whole, JSON that parses but cannot be written back (see
`karta.core.json_text`) is refused here too, with the 422 a validation error gets — one check for
every route of both planes, loosely typed fields included.

Routes that stream a large body to disk and bound it themselves (the release upload) are
named in `self_bounded` and pass untouched.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

from fastapi import FastAPI
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from karta.core.http_errors import ValidationFailed
from karta.core.json_text import unwritable


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 1 << 20
    max_header_bytes: int = 64 << 10
    max_headers: int = 100

    @classmethod
    def from_env(cls, default: Limits | None = None) -> Limits:
        """`KARTA_MAX_BODY_BYTES`, `KARTA_MAX_HEADER_BYTES`, `KARTA_MAX_HEADERS`, else
        `default`'s."""
        default = default or cls()
        return cls(
            max_body_bytes=int(os.environ.get("KARTA_MAX_BODY_BYTES") or default.max_body_bytes),
            max_header_bytes=int(
                os.environ.get("KARTA_MAX_HEADER_BYTES") or default.max_header_bytes
            ),
            max_headers=int(os.environ.get("KARTA_MAX_HEADERS") or default.max_headers),
        )


# A message may hold 1 000 000 characters, which as escaped JSON can take several bytes each.
DATA_PLANE = Limits(max_body_bytes=8 << 20)


@dataclass(frozen=True)
class Route:
    """A route by method and a regular expression over the path."""

    method: str
    path: re.Pattern[str]

    def matches(self, scope: Scope) -> bool:
        return scope["method"] == self.method and self.path.fullmatch(scope["path"]) is not None


class _ClientLeft(Exception):
    """The client disconnected before its body was complete."""


def _refusal(status: int, code: str, message: str) -> JSONResponse:
    # The rest of a refused body is never read, so the connection cannot carry another request.
    return JSONResponse(
        {"error": code, "message": message}, status_code=status, headers={"Connection": "close"}
    )


class RequestLimits:
    """Pure ASGI middleware: nothing is buffered beyond `max_body_bytes`."""

    def __init__(self, app: ASGIApp, limits: Limits, self_bounded: Sequence[Route] = ()) -> None:
        self.app = app
        self.limits = limits
        self.self_bounded = tuple(self_bounded)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        header_bytes = sum(len(name) + len(value) for name, value in headers)
        if len(headers) > self.limits.max_headers or header_bytes > self.limits.max_header_bytes:
            refusal = _refusal(
                431,
                "headers_too_large",
                f"at most {self.limits.max_headers} headers of "
                f"{self.limits.max_header_bytes} bytes in all are accepted",
            )
            await refusal(scope, receive, send)
            return
        if any(route.matches(scope) for route in self.self_bounded):
            await self.app(scope, receive, send)
            return
        try:
            body = await self._body(scope, receive)
        except _ClientLeft:
            return  # nobody is left to answer, and half a body must not reach a route
        if body is None:
            too_large = _refusal(
                413,
                "request_too_large",
                f"the request body is larger than {self.limits.max_body_bytes} bytes",
            )
            await too_large(scope, receive, send)
            return
        if found := unwritable(body):
            error = ValidationFailed(found)
            await JSONResponse(error.body(), status_code=error.status)(scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)

    async def _body(self, scope: Scope, receive: Receive) -> bytes | None:
        """The whole body, or None once it is known to be over the limit."""
        limit = self.limits.max_body_bytes
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            return None
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                raise _ClientLeft
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body in one message, then the client's own messages (a disconnect, for streams)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


def install(app: FastAPI, limits: Limits | None = None, self_bounded: Sequence[Route] = ()) -> None:
    """Bound every request `app` serves; `limits` default to the environment's."""
    app.add_middleware(
        RequestLimits, limits=limits or Limits.from_env(), self_bounded=tuple(self_bounded)
    )
