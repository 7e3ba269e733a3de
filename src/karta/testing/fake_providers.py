"""Local stand-ins for the five model providers an organization may bring a key for, checking
what they receive: each knows its accounts' credentials, refuses any other (401/403, in the
provider's own error shape), and records which account every call reached. Replies come from a
`ScriptedModel`'s scripts, so a real harness can run turns against them.

- Anthropic (`x-api-key`), OpenAI and OpenRouter (`Authorization: Bearer`): Messages, Chat
  Completions and their cheap key checks (`/v1/models`, OpenRouter's `/v1/key`).
- Bedrock: SigV4 is verified by recomputing the signature with botocore's own signer and the
  account's secret; answers stream in AWS event-stream framing, as Bedrock's do.
- Vertex: a token endpoint that verifies the service account's signed assertion with its
  public key and issues access tokens; `:rawPredict`/`:streamRawPredict` accept only those.

`providers.urls()` (or `providers.env()`, the same as `KARTA_PROVIDER_*_URL` variables) points
Karta at them. Everything listens on loopback only."""

from __future__ import annotations

import base64
import json
import secrets
import struct
import threading
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth import jwt
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from karta.core.providers import ProviderURLs
from karta.core.sse import iter_frames
from karta.testing import anthropic_wire, openai_wire
from karta.testing.blocks import ModelRequest
from karta.testing.loopback import LoopbackServer
from karta.testing.scripted_model import ScriptedModel


@dataclass
class Call:
    """One request a fake provider received: which account it reached (`""`: refused)."""

    provider: str
    account: str
    path: str
    body: dict[str, Any]
    headers: dict[str, str]


@dataclass
class ServiceAccount:
    """A Google service account made for a test: its key file, and the public half."""

    email: str
    key_file: str  # the JSON text a builder pastes
    public_pem: bytes


def new_service_account(name: str) -> ServiceAccount:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    email = f"{name}@karta-test.iam.gserviceaccount.com"
    info = {
        "type": "service_account",
        "project_id": "karta-test",
        "private_key_id": secrets.token_hex(20),
        "private_key": private,
        "client_email": email,
        "token_uri": "https://token.invalid/never-used",
    }
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return ServiceAccount(email, json.dumps(info), public)


def event_stream_message(headers: dict[str, str], payload: bytes) -> bytes:
    """One message of AWS's event-stream framing (string headers only)."""
    encoded = b""
    for name, value in headers.items():
        raw = value.encode()
        encoded += bytes([len(name)]) + name.encode() + b"\x07" + struct.pack(">H", len(raw)) + raw
    total = 12 + len(encoded) + len(payload) + 4
    prelude = struct.pack(">II", total, len(encoded))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    message = prelude + encoded + payload
    return message + struct.pack(">I", zlib.crc32(message))


def _recomputed_signature(request: Request, body: bytes, secret: str) -> str | None:
    """The SigV4 signature botocore computes for this request with `secret`; None when the
    request is not SigV4-signed."""
    auth = request.headers.get("authorization", "")
    if not auth.startswith("AWS4-HMAC-SHA256 "):
        return None
    fields = dict(part.strip().split("=", 1) for part in auth[17:].split(","))
    access_key, _day, region, service, _ = fields["Credential"].split("/")
    signed = fields["SignedHeaders"].split(";")
    headers = {name: request.headers.get(name, "") for name in signed}
    # The path as it was sent (still percent-encoded), as AWS signs it.
    url = f"{request.url.scheme}://{request.url.netloc}{request.scope['raw_path'].decode()}"
    if request.url.query:
        url += f"?{request.url.query}"
    aws = AWSRequest(method=request.method, url=url, data=body, headers=headers)
    aws.context["timestamp"] = request.headers.get("x-amz-date", "")
    token = request.headers.get("x-amz-security-token")
    signer = SigV4Auth(Credentials(access_key, secret, token), service, region)
    canonical = signer.canonical_request(aws)
    return str(signer.signature(signer.string_to_sign(aws, canonical), aws))


@dataclass
class _Accounts:
    bearer: dict[tuple[str, str], str] = field(default_factory=dict)  # (provider, key) → name
    aws: dict[str, tuple[str, str]] = field(default_factory=dict)  # access key → (name, secret)
    google: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # email → (name, pem)
    tokens: dict[str, str] = field(default_factory=dict)  # issued access token → name


class FakeProviders:
    def __init__(self, model: ScriptedModel | None = None) -> None:
        self.model = model or ScriptedModel()
        self.url = ""
        self._accounts = _Accounts()
        self._calls: list[Call] = []
        self._lock = threading.Lock()
        self._server: LoopbackServer | None = None

    # --- accounts -----------------------------------------------------------------------------

    def api_key_account(self, provider: str, name: str) -> str:
        """A new account of `provider` (anthropic, openai or openrouter): its API key."""
        key = f"sk-{provider}-{name}-{secrets.token_hex(12)}"
        with self._lock:
            self._accounts.bearer[(provider, key)] = name
        return key

    def bedrock_account(self, name: str, region: str = "us-east-1") -> dict[str, str]:
        """A new AWS account: the credential a builder would give Karta for it."""
        access = "AKIA" + secrets.token_hex(8).upper()
        secret = secrets.token_urlsafe(30)
        with self._lock:
            self._accounts.aws[access] = (name, secret)
        return {"access_key_id": access, "secret_access_key": secret, "region": region}

    def vertex_account(self, name: str, region: str = "us-east5") -> dict[str, str]:
        account = new_service_account(name)
        with self._lock:
            self._accounts.google[account.email] = (name, account.public_pem)
        return {"service_account": account.key_file, "project": "karta-test", "region": region}

    # --- what was received --------------------------------------------------------------------

    @property
    def calls(self) -> list[Call]:
        with self._lock:
            return list(self._calls)

    def model_calls(self) -> list[Call]:
        """Calls that asked for a reply (not key checks nor token requests)."""
        return [c for c in self.calls if c.body]

    def _record(self, call: Call) -> None:
        with self._lock:
            self._calls.append(call)

    def urls(self) -> ProviderURLs:
        return ProviderURLs(
            anthropic=f"{self.url}/anthropic",
            openai=f"{self.url}/openai/v1",
            openrouter=f"{self.url}/openrouter",
            bedrock=f"{self.url}/bedrock/{{region}}",
            bedrock_runtime=f"{self.url}/bedrock-runtime/{{region}}",
            vertex=f"{self.url}/vertex/{{region}}",
            vertex_token=f"{self.url}/vertex-token",
        )

    def env(self) -> dict[str, str]:
        urls = self.urls()
        return {
            f"KARTA_PROVIDER_{name.upper()}_URL": getattr(urls, name)
            for name in urls.__dataclass_fields__
        }

    # --- HTTP ---------------------------------------------------------------------------------

    async def _handle(self, request: Request) -> Response:
        body = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        provider, _, rest = request.url.path.lstrip("/").partition("/")
        parsed = json.loads(body) if body and provider != "vertex-token" else {}
        if provider in ("anthropic", "openai", "openrouter"):
            return await self._bearer(provider, "/" + rest, parsed, headers, request)
        if provider in ("bedrock", "bedrock-runtime"):
            return await self._bedrock(provider, "/" + rest, body, parsed, headers, request)
        if provider == "vertex-token":
            return await self._token(request, body)
        if provider == "vertex":
            return await self._vertex("/" + rest, parsed, headers)
        return JSONResponse({"message": "no such fake provider"}, 404)

    async def _bearer(
        self,
        provider: str,
        path: str,
        body: dict[str, Any],
        headers: dict[str, str],
        request: Request,
    ) -> Response:
        token = headers.get("authorization", "").partition(" ")[2]
        key = headers.get("x-api-key") if provider == "anthropic" else token
        with self._lock:
            account = self._accounts.bearer.get((provider, key or ""), "")
        self._record(Call(provider, account, path, body, headers))
        openai_shaped = provider == "openai" or path.endswith("/chat/completions")
        if not account:
            if openai_shaped:
                error = {"message": "Incorrect API key provided", "type": "invalid_request_error"}
                return JSONResponse({"error": {**error, "code": "invalid_api_key"}}, 401)
            return JSONResponse(
                {
                    "type": "error",
                    "error": {"type": "authentication_error", "message": "invalid x-api-key"},
                },
                401,
            )
        if request.method == "GET":
            return JSONResponse({"data": [{"id": "fake-model", "label": account}]})
        wire = "openai" if openai_shaped else "anthropic"
        return await self._reply(body, headers, path, wire)

    async def _reply(
        self, body: dict[str, Any], headers: dict[str, str], path: str, wire: str
    ) -> Response:
        reply = self.model.next_reply(ModelRequest(body, headers, path, wire))
        codec = openai_wire if wire == "openai" else anthropic_wire
        if reply.status is not None:
            return JSONResponse(codec.error_body(reply), status_code=reply.status)
        model = str(body.get("model") or "fake-model")
        if not body.get("stream"):
            return JSONResponse(codec.message(reply, model))
        return StreamingResponse(
            codec.stream(reply, model, self.model.chunk_size), media_type="text/event-stream"
        )

    async def _bedrock(
        self,
        service: str,
        path: str,
        raw: bytes,
        body: dict[str, Any],
        headers: dict[str, str],
        request: Request,
    ) -> Response:
        credential = headers.get("authorization", "").partition("Credential=")[2].split("/")[0]
        with self._lock:
            name, secret = self._accounts.aws.get(credential, ("", ""))
        signature = headers.get("authorization", "").rpartition("Signature=")[2]
        valid = bool(name) and _recomputed_signature(request, raw, secret) == signature
        self._record(Call("bedrock", name if valid else "", path, body, headers))
        if not valid:
            return JSONResponse(
                {"message": "The request signature we calculated does not match the signature"},
                403,
            )
        if service == "bedrock":  # the control API: ListFoundationModels
            return JSONResponse({"modelSummaries": [{"modelId": "anthropic.fake"}]})
        # /{region}/model/{model}/invoke[-with-response-stream]
        model = path.split("/model/", 1)[1].rsplit("/", 1)[0]
        messages = {**body, "model": model}
        if not path.endswith("invoke-with-response-stream"):
            reply = self.model.next_reply(ModelRequest(messages, headers, path))
            return JSONResponse(anthropic_wire.message(reply, model))
        reply = self.model.next_reply(ModelRequest({**messages, "stream": True}, headers, path))
        frames = anthropic_wire.stream(reply, model, self.model.chunk_size)
        return StreamingResponse(
            _as_event_stream(frames), media_type="application/vnd.amazon.eventstream"
        )

    async def _token(self, request: Request, raw: bytes) -> Response:
        form = dict(part.split("=", 1) for part in raw.decode().split("&") if "=" in part)
        assertion = form.get("assertion", "")
        try:
            claims = jwt.decode(assertion, verify=False)
            with self._lock:
                name, pem = self._accounts.google.get(str(claims.get("iss")), ("", b""))
            if not name:
                raise ValueError("unknown service account")
            jwt.decode(assertion, certs=pem.decode(), audience=str(request.url))
        except ValueError:
            self._record(Call("vertex", "", "/token", {}, {}))
            return JSONResponse({"error": "invalid_grant"}, 400)
        token = f"ya29.{secrets.token_urlsafe(24)}"
        with self._lock:
            self._accounts.tokens[token] = name
        self._record(Call("vertex", name, "/token", {}, {}))
        return JSONResponse({"access_token": token, "expires_in": 3599, "token_type": "Bearer"})

    async def _vertex(self, path: str, body: dict[str, Any], headers: dict[str, str]) -> Response:
        token = headers.get("authorization", "").partition(" ")[2]
        with self._lock:
            name = self._accounts.tokens.get(token, "")
        self._record(Call("vertex", name, path, body, headers))
        if not name:
            error = {"code": 401, "message": "invalid credentials", "status": "UNAUTHENTICATED"}
            return JSONResponse({"error": error}, 401)
        model = path.rsplit("/models/", 1)[1].split(":", 1)[0]
        streaming = path.endswith(":streamRawPredict")
        body = {**body, "model": model, "stream": streaming}
        return await self._reply(body, headers, path, "anthropic")

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> str:
        app = Starlette(routes=[Route("/{rest:path}", self._handle, methods=["GET", "POST"])])
        self._server = LoopbackServer(app, "fake-providers")
        self.url = self._server.url
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
        self._server = None

    def __enter__(self) -> FakeProviders:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def _as_event_stream(frames: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Anthropic SSE frames re-framed as Bedrock streams them: each event's JSON, base64'd, in
    a `chunk` event."""
    buffered = b""
    async for frame in frames:
        buffered += frame
        *complete, buffered = buffered.split(b"\n\n")
        for block in complete:
            for event in iter_frames(block.decode().split("\n")):
                payload = json.dumps({"bytes": base64.b64encode(event.data.encode()).decode()})
                yield event_stream_message(
                    {
                        ":event-type": "chunk",
                        ":content-type": "application/json",
                        ":message-type": "event",
                    },
                    payload.encode(),
                )
