"""Bearer-key authentication: every request resolves to a `Principal` or gets a 401."""

from __future__ import annotations

from fastapi import Request

from karta.errors import Unauthorized
from karta.identity import authenticate
from karta.principal import OPEN, Principal


async def principal(request: Request) -> Principal:
    state = request.app.state
    if state.settings.open_auth:
        return OPEN
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("missing bearer credential: send 'Authorization: Bearer kt_live_…'")
    found = await authenticate(state.db, token.strip())
    if found is None:
        raise Unauthorized("invalid or revoked API key")
    return found
