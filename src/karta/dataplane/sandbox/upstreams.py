"""Where each model call goes and with whose key: the model proxy asks `Upstreams.resolve` once
per call, with the caller's organization and project and the API the harness speaks (its
*wire*), and gets an `Upstream`: the URL, the credential headers (a bearer key, a SigV4
signature for this exact request, a Vertex access token), the body as that provider wants it,
and how to turn its answer back into the wire's own stream.

Precedence (docs/byok.md): the project's key for the provider, else the organization's, else the
platform's — and the platform's only when no key of the org's own is set for that provider and
the call goes to the platform's own endpoint. A platform key is never sent to a provider or an
endpoint the organization chose. Claude Code speaks Anthropic Messages whatever the provider:
Bedrock gets them signed and answers in AWS event-stream framing, translated back to Anthropic
SSE here; Vertex and OpenRouter take Anthropic Messages as they are."""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol
from urllib.parse import quote

import httpx
from botocore.eventstream import EventStreamBuffer, ParserError

from karta.core import internal_api as api
from karta.core.provider_auth import AccessToken, TokenRefused, sigv4_headers, vertex_token
from karta.core.providers import SERVES, KeyOwner, ProviderURLs, native

ANTHROPIC_PATH = "/v1/messages"  # the two APIs harnesses speak, as the proxy serves them
OPENAI_PATH = "/v1/chat/completions"
BEDROCK_VERSION = "bedrock-2023-05-31"
VERTEX_VERSION = "vertex-2023-10-16"
TOKEN_MARGIN = 60.0  # a Vertex token is renewed this long before it expires

Decode = Callable[[AsyncIterator[bytes]], AsyncIterator[bytes]]


class AccessSource(Protocol):
    """The organization's keys and model settings (`karta.dataplane.control.model_access`)."""

    async def get(self, organization_id: int | None, project_id: int | None) -> api.ModelAccess: ...


class Unroutable(Exception):
    """No upstream may serve this call; the harness is told why (never with a key)."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message


class KeyRejected(Exception):
    """The provider refused the organization's own credential before the call was sent (a
    Vertex token request)."""


@dataclass(frozen=True)
class Upstream:
    url: str  # the full URL the call is forwarded to
    headers: dict[str, str] = field(repr=False)  # the credential, as this provider wants it
    provider: str = "anthropic"
    owner: KeyOwner = "platform"  # whose key: the platform's, the org's or the project's
    key_id: int | None = None  # the organization's stored key, when it is one of theirs
    body: bytes | None = None  # the body to send, when it differs from the harness's
    passthrough: bool = True  # pass the harness's API headers (anthropic-beta, …) and query on
    decode: Decode | None = None  # turns the provider's answer into the wire's stream
    content_type: str | None = None  # the answer's media type, when `decode` changes it


def platform_upstreams(model_env: dict[str, str]) -> dict[str, Upstream]:
    """The platform's own upstream per wire, from the operator's model settings."""
    found: dict[str, Upstream] = {}
    anthropic: dict[str, str] = {}
    if model_env.get("ANTHROPIC_API_KEY"):
        anthropic["x-api-key"] = model_env["ANTHROPIC_API_KEY"]
    if model_env.get("ANTHROPIC_AUTH_TOKEN"):
        anthropic["authorization"] = f"Bearer {model_env['ANTHROPIC_AUTH_TOKEN']}"
    if anthropic or model_env.get("ANTHROPIC_BASE_URL"):
        base = model_env.get("ANTHROPIC_BASE_URL") or "https://api.anthropic.com"
        found["anthropic"] = Upstream(base.rstrip("/") + ANTHROPIC_PATH, anthropic, "anthropic")
    if model_env.get("OPENAI_API_KEY") or model_env.get("OPENAI_BASE_URL"):
        base = model_env.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
        headers = {}
        if model_env.get("OPENAI_API_KEY"):
            headers["authorization"] = f"Bearer {model_env['OPENAI_API_KEY']}"
        found["openai"] = Upstream(base.rstrip("/") + "/chat/completions", headers, "openai")
    return found


class Upstreams:
    def __init__(
        self,
        model_env: dict[str, str],
        urls: ProviderURLs | None = None,
        access: AccessSource | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.platform = platform_upstreams(model_env)
        self.urls = urls or ProviderURLs()
        self.access = access
        self.clock = clock
        self._tokens: dict[int, tuple[float, AccessToken]] = {}  # stored key id → token
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=10.0))

    async def close(self) -> None:
        await self._client.aclose()

    def serves(self, wire: str) -> bool:
        """Whether the platform itself has an upstream for this wire."""
        return wire in self.platform

    async def resolve(
        self,
        organization_id: int | None,
        project_id: int | None,
        wire: str,
        body: bytes,
        headers: Mapping[str, str],
    ) -> Upstream:
        """`ControlPlaneUnavailable` when the organization's keys cannot be known now (the
        call fails: it never falls back to the platform's key), `Unroutable` when nothing may
        serve it, `KeyRejected` when the provider refused the org's credential up front."""
        access = api.ModelAccess()
        if self.access is not None:
            access = await self.access.get(organization_id, project_id)
        provider = access.provider or native(wire)
        if provider not in SERVES[wire]:
            raise Unroutable(
                400,
                "invalid_request_error",
                f"this project's model settings send calls to {provider}, "
                f"which does not take {wire} requests",
            )
        if access.model:
            body = _with_model(body, access.model)
        key = next((k for k in access.keys if k.provider == provider), None)
        if key is None:
            if provider != native(wire) or access.endpoint_url:
                raise Unroutable(
                    403,
                    "permission_error",
                    f"no {provider} key of the organization's own is set for these model "
                    "settings (the platform's key serves only its own endpoint)",
                )
            platform = self.platform.get(wire)
            if platform is None:
                raise Unroutable(404, "not_found_error", f"no {wire} provider is configured")
            return replace(platform, body=body) if access.model else platform
        route = await self._route(key, wire, body, headers, access.endpoint_url)
        return replace(
            route,
            provider=provider,
            owner=key.owner,
            key_id=key.key_id,
            body=route.body if route.body is not None else body,
        )

    async def _route(
        self,
        key: api.ProviderCredential,
        wire: str,
        body: bytes,
        headers: Mapping[str, str],
        endpoint: str | None,
    ) -> Upstream:
        material, urls = key.material, self.urls
        if key.provider == "anthropic":
            url = (endpoint or urls.at("anthropic")) + ANTHROPIC_PATH
            return Upstream(url, {"x-api-key": material["api_key"]})
        if key.provider == "openai":
            url = (endpoint or urls.at("openai")) + "/chat/completions"
            return Upstream(url, {"authorization": f"Bearer {material['api_key']}"})
        if key.provider == "openrouter":
            path = ANTHROPIC_PATH if wire == "anthropic" else OPENAI_PATH
            bearer = {"authorization": f"Bearer {material['api_key']}"}
            return Upstream(urls.at("openrouter") + path, bearer)
        request = _anthropic_body(body)
        model = str(request.pop("model", "") or "")
        stream = bool(request.get("stream"))
        beta = headers.get("anthropic-beta")
        if key.provider == "bedrock":
            request.pop("stream", None)
            request["anthropic_version"] = BEDROCK_VERSION
            if beta:
                request["anthropic_beta"] = [b.strip() for b in beta.split(",") if b.strip()]
            action = "invoke-with-response-stream" if stream else "invoke"
            url = (
                f"{urls.at('bedrock_runtime', material['region'])}"
                f"/model/{quote(model, safe='')}/{action}"
            )
            raw = json.dumps(request).encode()
            accept = "application/vnd.amazon.eventstream" if stream else "application/json"
            base = {"content-type": "application/json", "accept": accept}
            signed = sigv4_headers("POST", url, raw, base, material, "bedrock")
            return Upstream(
                url,
                signed,
                body=raw,
                passthrough=False,
                decode=bedrock_to_sse if stream else None,
                content_type="text/event-stream" if stream else None,
            )
        request["anthropic_version"] = VERTEX_VERSION
        region, project = material["region"], material["project"]
        action = "streamRawPredict" if stream else "rawPredict"
        url = (
            f"{urls.at('vertex', region)}/v1/projects/{project}/locations/{region}"
            f"/publishers/anthropic/models/{quote(model, safe='@')}:{action}"
        )
        token = await self._vertex_token(key)
        auth = {"authorization": f"Bearer {token.value}", "content-type": "application/json"}
        if beta:
            auth["anthropic-beta"] = beta
        return Upstream(url, auth, body=json.dumps(request).encode(), passthrough=False)

    async def _vertex_token(self, key: api.ProviderCredential) -> AccessToken:
        """The service account's access token, fetched when none is held or it is about to
        expire. Cached per stored key: a rotated key (a new id) gets a token of its own."""
        held = self._tokens.get(key.key_id)
        now = self.clock()
        if held is not None and held[0] > now:
            return held[1]
        try:
            token = await vertex_token(
                self._client, key.material, self.urls.at("vertex_token"), int(time.time())
            )
        except TokenRefused as exc:
            raise KeyRejected(str(exc)) from None
        except (ValueError, KeyError) as exc:
            raise KeyRejected("the service account cannot sign a token request") from exc
        self._tokens[key.key_id] = (now + max(token.expires_in - TOKEN_MARGIN, 0.0), token)
        return token

    def forget(self, key_id: int) -> None:
        """Drop what is held for a stored key (its Vertex token), after the provider refused
        it."""
        self._tokens.pop(key_id, None)


def _anthropic_body(body: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(body)
    except ValueError:
        raise Unroutable(400, "invalid_request_error", "the request body is not JSON") from None
    if not isinstance(parsed, dict):
        raise Unroutable(400, "invalid_request_error", "the request body is not an object")
    return parsed


def _with_model(body: bytes, model: str) -> bytes:
    parsed = _anthropic_body(body)
    parsed["model"] = model
    return json.dumps(parsed).encode()


async def bedrock_to_sse(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Bedrock's event stream as Anthropic's SSE: each `chunk` event carries one Anthropic
    stream event, base64'd; an `exception` message becomes an Anthropic `error` event."""
    buffer = EventStreamBuffer()
    async for chunk in chunks:
        buffer.add_data(chunk)
        try:
            messages = list(buffer)
        except ParserError:
            yield _sse({"type": "error", "error": {"type": "api_error", "message": "bad frame"}})
            return
        for message in messages:
            kind = message.headers.get(":message-type")
            if kind == "event" and message.headers.get(":event-type") == "chunk":
                try:
                    event = json.loads(base64.b64decode(json.loads(message.payload)["bytes"]))
                except (ValueError, KeyError, binascii.Error):
                    continue
                yield _sse(event)
            elif kind in ("exception", "error"):
                name = str(
                    message.headers.get(":exception-type")
                    or message.headers.get(":error-code")
                    or "api_error"
                )
                yield _sse({"type": "error", "error": {"type": name, "message": name}})


def _sse(event: dict[str, Any]) -> bytes:
    return f"event: {event.get('type', 'message')}\ndata: {json.dumps(event)}\n\n".encode()
