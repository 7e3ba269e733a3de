"""The model proxy: the only path from a harness to a model provider.

A harness is given a per-session credential (`kps_…`, known only to this process, revoked when
its sandbox is destroyed) and a base URL that reaches this proxy: inside a bwrap sandbox
through a UNIX socket bound into it, without a sandbox on a loopback port. The proxy
authenticates the credential, maps it to its session, organization and project, applies the
organization's concurrency and rate limits and the grant's own admission check (a call outside
its session's turns is refused, as is one its payer's budget cannot cover), replaces the
credential with the provider key that serves the caller (the project's or organization's own,
else the platform's: `upstreams`), forwards Anthropic Messages or OpenAI-compatible chat
completions, and streams the answer back as it arrives while reading the provider's usage from
it; the usage goes to whoever admitted the call. A key of the organization's own that the
provider refuses ends the turn (`byok_key_rejected`); the call is never retried with the
platform's key.

Everything else is refused. Neither keys nor prompt bodies are ever logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from yarl import URL

from karta.core.errors import ByokKeyRejected, Unavailable
from karta.core.http_keepalive import SERVER_KEEPALIVE
from karta.dataplane.sandbox.meter import CallUsage, UsageMeter
from karta.dataplane.sandbox.upstreams import (
    ANTHROPIC_PATH,
    OPENAI_PATH,
    Decode,
    KeyRejected,
    Unroutable,
    Upstream,
    Upstreams,
)

log = logging.getLogger(__name__)

CREDENTIAL_PREFIX = "kps_"
ANY_METHOD = ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS")
# Never forwarded upstream: the harness's credential, hop-by-hop headers, and compression
# (the proxy reads usage from the body it relays).
DROPPED_REQUEST = frozenset(
    {
        "host",
        "authorization",
        "x-api-key",
        "content-length",
        "connection",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "accept-encoding",
        "cookie",
    }
)
DROPPED_RESPONSE = frozenset(
    {"content-length", "connection", "keep-alive", "transfer-encoding", "content-encoding"}
    | {"set-cookie"}
)

Usage = Callable[[CallUsage], None]


@dataclass(frozen=True)
class Refusal:
    """Why a call may not go ahead, as the harness is told (an HTTP status and error type)."""

    status: int
    kind: str
    message: str


# Asked before each call: a refusal, or where the call's usage goes once it is done.
Admit = Callable[[], Awaitable[Refusal | Usage]]
Refused = Callable[[Refusal], None]  # a refusal that ends the running turn
REJECTED = ByokKeyRejected.code


@dataclass
class Grant:
    """One sandbox's right to call the model, on behalf of one session. A pre-started
    (pooled) harness's grant is not `bound` until a session adopts it: until then it has no
    owner to meter or limit, and every call is refused."""

    credential: str
    session_id: str
    organization_id: int | None
    project_id: int | None
    admit: Admit | None = None  # None: every call may go ahead, unmetered
    on_refusal: Refused | None = None  # told when a refusal ends the turn (a rejected key)
    bound: bool = True

    def bind(self, organization_id: int | None, project_id: int | None) -> None:
        """The session that adopted the harness is known: calls are now its own."""
        self.organization_id, self.project_id, self.bound = organization_id, project_id, True


@dataclass
class OrgLimits:
    """Per organization: at most `concurrency` calls in flight (more wait, up to
    `queue_timeout`), and at most `per_minute` calls started per rolling minute."""

    concurrency: int = 16
    per_minute: int = 600
    queue_timeout: float = 30.0
    _slots: dict[int | None, asyncio.Semaphore] = field(default_factory=dict)
    _starts: dict[int | None, list[float]] = field(default_factory=dict)

    def rate_ok(self, org: int | None, now: float) -> bool:
        starts = [t for t in self._starts.get(org, []) if t > now - 60.0]
        self._starts[org] = starts
        if len(starts) >= self.per_minute:
            return False
        starts.append(now)
        return True

    def slot(self, org: int | None) -> asyncio.Semaphore:
        return self._slots.setdefault(org, asyncio.Semaphore(self.concurrency))


def _error(wire: str, status: int, kind: str, message: str) -> JSONResponse:
    if wire == "openai":
        return JSONResponse({"error": {"message": message, "type": kind, "code": kind}}, status)
    return JSONResponse({"type": "error", "error": {"type": kind, "message": message}}, status)


def credential_of(request: Request) -> str | None:
    key = request.headers.get("x-api-key")
    if key:
        return key
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token if scheme.lower() == "bearer" and token else None


class _QuietServer(uvicorn.Server):
    """Runs inside the server's loop; signals belong to the planes."""

    @contextlib.contextmanager
    def capture_signals(self) -> Any:
        yield


class ModelProxy:
    def __init__(
        self,
        model_env: dict[str, str],
        limits: OrgLimits | None = None,
        clock: Callable[[], float] = time.monotonic,
        upstreams: Upstreams | None = None,
    ) -> None:
        """`upstreams`: where calls go and with whose key (default: the platform's only)."""
        self.upstreams = upstreams or Upstreams(model_env)
        only_openai = self.upstreams.serves("openai") and not self.upstreams.serves("anthropic")
        self.wire = "openai" if only_openai else "anthropic"
        self.limits = limits or OrgLimits()
        self.clock = clock
        self._grants: dict[str, Grant] = {}
        # Forwarding runs on aiohttp, whose C parser costs a fraction of a pure-Python client's
        # on every call and chunk (created on first use: it belongs to the serving loop).
        self._client: aiohttp.ClientSession | None = None
        self._server: _QuietServer | None = None
        self._task: asyncio.Task[None] | None = None
        self.socket_path: Path | None = None
        self.url: str | None = None  # the loopback URL, when serving TCP
        self.app = Starlette(
            routes=[
                Route(ANTHROPIC_PATH, self._anthropic, methods=["POST"]),
                Route(OPENAI_PATH, self._openai, methods=["POST"]),
                Route("/{rest:path}", self._refuse, methods=list(ANY_METHOD)),
            ]
        )

    # --- grants -------------------------------------------------------------------------------

    def grant(
        self,
        session_id: str,
        organization_id: int | None,
        project_id: int | None,
        *,
        admit: Admit | None = None,
        on_refusal: Refused | None = None,
        bound: bool = True,
    ) -> Grant:
        grant = Grant(
            CREDENTIAL_PREFIX + secrets.token_urlsafe(32),
            session_id,
            organization_id,
            project_id,
            admit,
            on_refusal,
            bound,
        )
        self._grants[grant.credential] = grant
        return grant

    def revoke(self, grant: Grant) -> None:
        self._grants.pop(grant.credential, None)

    def harness_env(self, base_url: str, grant: Grant) -> dict[str, str]:
        """The model variables a harness gets: the proxy, and a credential worth nothing
        anywhere else."""
        if self.wire == "openai":
            return {"OPENAI_BASE_URL": base_url + "/v1", "OPENAI_API_KEY": grant.credential}
        return {"ANTHROPIC_BASE_URL": base_url, "ANTHROPIC_API_KEY": grant.credential}

    # --- serving ------------------------------------------------------------------------------

    async def start(self, *, unix_path: Path | None = None, tcp: bool = False) -> None:
        sockets = []
        if unix_path is not None:
            sockets.append(_unix_socket(unix_path))
            self.socket_path = unix_path
        if tcp:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            # Accepted connections inherit it: a streamed answer's small writes must not wait
            # for the client's delayed ACK (40 ms a call otherwise).
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.bind(("127.0.0.1", 0))
            self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
            sockets.append(sock)
        config = uvicorn.Config(
            self.app,
            lifespan="off",
            log_level="warning",
            access_log=False,
            timeout_keep_alive=SERVER_KEEPALIVE,
        )
        self._server = _QuietServer(config)
        self._task = asyncio.create_task(self._server.serve(sockets=sockets))
        while not self._server.started:
            if self._task.done():
                self._task.result()
                raise RuntimeError("the model proxy did not start")
            await asyncio.sleep(0.005)

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await asyncio.gather(self._task, return_exceptions=True)
        if self._client is not None:
            await self._client.close()
        await self.upstreams.close()
        if self.socket_path is not None:
            self.socket_path.unlink(missing_ok=True)

    # --- forwarding ---------------------------------------------------------------------------

    async def _anthropic(self, request: Request) -> Response:
        return await self._forward(request, "anthropic")

    async def _openai(self, request: Request) -> Response:
        return await self._forward(request, "openai")

    async def _refuse(self, request: Request) -> Response:
        message = "the model proxy forwards model calls only"
        return _error(self.wire, 404, "not_found_error", message)

    async def _forward(self, request: Request, wire: str) -> Response:
        credential = credential_of(request)
        grant = self._grants.get(credential) if credential else None
        if grant is None:
            return _error(wire, 401, "authentication_error", "invalid credential")
        if not grant.bound:
            return _error(wire, 409, "permission_error", "this harness serves no session yet")
        if not self.limits.rate_ok(grant.organization_id, self.clock()):
            response = _error(wire, 429, "rate_limit_error", "too many model calls; slow down")
            response.headers["retry-after"] = "5"
            return response
        on_usage: Usage | None = None
        if grant.admit is not None:
            admitted = await grant.admit()
            if isinstance(admitted, Refusal):
                return _error(wire, admitted.status, admitted.kind, admitted.message)
            on_usage = admitted
        body = await request.body()
        model, body = _prepare_body(wire, body)
        try:
            upstream = await self.upstreams.resolve(
                grant.organization_id, grant.project_id, wire, body, request.headers
            )
        except Unroutable as exc:
            return _error(wire, exc.status, exc.kind, exc.message)
        except KeyRejected:
            return self._rejected(wire, grant, None)
        except Unavailable:
            message = "the organization's model keys cannot be looked up right now"
            return _error(wire, 503, "overloaded_error", message)
        slot = self.limits.slot(grant.organization_id)
        try:
            await asyncio.wait_for(slot.acquire(), self.limits.queue_timeout)
        except TimeoutError:
            return _error(wire, 429, "rate_limit_error", "too many concurrent model calls")
        try:
            answer = await self._send(request, upstream, body)
        except (aiohttp.ClientError, TimeoutError) as exc:
            slot.release()
            log.warning("model provider unreachable: %s", type(exc).__name__)
            return _error(wire, 502, "api_error", "the model provider is unreachable")
        if answer.status in (401, 403) and upstream.owner != "platform":
            slot.release()
            answer.release()
            return self._rejected(wire, grant, upstream)
        meter = UsageMeter(wire, model, upstream.provider, upstream.owner)
        kept = {
            k.lower(): v for k, v in answer.headers.items() if k.lower() not in DROPPED_RESPONSE
        }
        if upstream.content_type is not None:
            kept["content-type"] = upstream.content_type
        return StreamingResponse(
            self._relay(answer, meter, on_usage, slot, upstream.decode),
            status_code=answer.status,
            headers=kept,
        )

    async def _send(
        self, request: Request, upstream: Upstream, body: bytes
    ) -> aiohttp.ClientResponse:
        url, headers = upstream.url, dict(upstream.headers)
        if upstream.passthrough:
            kept = {k: v for k, v in request.headers.items() if k.lower() not in DROPPED_REQUEST}
            headers = {**kept, **headers}
            url += f"?{request.url.query}" if request.url.query else ""
        # Uncompressed: the proxy reads usage from the body it relays.
        headers["accept-encoding"] = "identity"
        content = upstream.body if upstream.body is not None else body
        if self._client is None:
            self._client = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10.0, sock_read=600.0),
                skip_auto_headers=("Content-Type",),  # only what the caller or upstream set
            )
        # As built: a signed upstream (Bedrock) signed this exact path, escapes included.
        return await self._client.post(URL(url, encoded=True), data=content, headers=headers)

    def _rejected(self, wire: str, grant: Grant, upstream: Upstream | None) -> Response:
        """The provider refused the organization's own key: the turn ends with
        `byok_key_rejected`, and nothing is retried with another key."""
        if upstream is not None and upstream.key_id is not None:
            self.upstreams.forget(upstream.key_id)
        provider = upstream.provider if upstream is not None else "the provider"
        log.warning(
            "%s refused the key of organization %s (session %s)",
            provider,
            grant.organization_id,
            grant.session_id,
        )
        refusal = Refusal(
            422, REJECTED, f"{provider} refused the organization's own key; fix or revoke it"
        )
        if grant.on_refusal is not None:
            grant.on_refusal(refusal)
        return _error(wire, refusal.status, refusal.kind, refusal.message)

    async def _relay(
        self,
        answer: aiohttp.ClientResponse,
        meter: UsageMeter,
        on_usage: Usage | None,
        slot: asyncio.Semaphore,
        decode: Decode | None,
    ) -> AsyncIterator[bytes]:
        raw = answer.content.iter_any()
        chunks = raw if decode is None else decode(raw)
        try:
            async for chunk in chunks:
                meter.feed(chunk)
                yield chunk
        finally:
            slot.release()
            answer.release()  # back to the pool when read to the end, else closed
            media = "text/event-stream" if decode is not None else ""
            usage = meter.finish(media or answer.headers.get("content-type", ""))
            if on_usage is not None and 200 <= answer.status < 300:
                on_usage(usage)


def _unix_socket(path: Path) -> socket.socket:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    # Any sandbox uid may connect: the credential is what authenticates a caller.
    path.chmod(0o666)
    return sock


def _prepare_body(wire: str, body: bytes) -> tuple[str | None, bytes]:
    """The requested model, and the body to forward: an OpenAI stream is asked to report its
    usage in its last chunk (the proxy meters it); anything else goes through untouched."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return None, body
    if not isinstance(parsed, dict):
        return None, body
    model = parsed.get("model") if isinstance(parsed.get("model"), str) else None
    if wire == "openai" and parsed.get("stream"):
        options = parsed.get("stream_options")
        if not (isinstance(options, dict) and options.get("include_usage")):
            parsed["stream_options"] = {**(options or {}), "include_usage": True}
            return model, json.dumps(parsed).encode()
    return model, body
