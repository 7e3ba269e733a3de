"""How long Karta's HTTP connections stay open while idle, at both ends.

A server closes a connection once it has been idle for the server's keep-alive timeout. A
request that a client sends on that connection at the same moment fails (`httpx.ReadError`).
Between the planes, such a failure becomes a 503 and a failure the breaker counts; with httpx's
and uvicorn's defaults (5 s each) it happened to requests sent after 5 s of quiet. So the two
ends are set apart:

- Karta's servers keep an idle connection for `SERVER_KEEPALIVE` seconds. That is longer than
  the idle timeout of common load balancers (60 s), which would otherwise reuse a connection the
  server is closing, and answer 502.
- Karta's clients of other Karta servers (plane to plane, replica to replica, instance to
  instance) drop an idle connection after `CLIENT_KEEPALIVE` seconds. That is shorter than any
  server's timeout, uvicorn's default of 5 s included.
"""

from __future__ import annotations

from typing import Any

import httpx

SERVER_KEEPALIVE = 75
CLIENT_KEEPALIVE = 4.0


def karta_client(**options: Any) -> httpx.AsyncClient:
    """An httpx client for calls to another Karta server (`options` go to `AsyncClient`)."""
    return httpx.AsyncClient(limits=httpx.Limits(keepalive_expiry=CLIENT_KEEPALIVE), **options)
