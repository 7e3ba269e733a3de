"""Checking what a builder gives us before it is stored: a provider credential's shape, the
credential itself (one cheap authenticated call to the provider), and a model endpoint URL
(https only, no private, loopback or link-local host, no IP literal — unless the operator allows
them with `KARTA_MODEL_ENDPOINTS_ALLOW_PRIVATE`).

Errors name the field at fault, never its value."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import re
import socket
import time
from urllib.parse import urlsplit

import httpx

from karta.core.errors import KartaError
from karta.core.provider_auth import TokenRefused, sigv4_headers, vertex_token
from karta.core.providers import (
    GCP_PROJECT_PATTERN,
    MATERIAL,
    REGION_PATTERN,
    ProviderURLs,
)

CHECK_TIMEOUT = 10.0
ANTHROPIC_VERSION = "2023-06-01"
LOCAL_SUFFIXES = (".localhost", ".local", ".internal", ".localdomain")


class InvalidProviderKey(KartaError):
    status = 422
    code = "invalid_provider_key"


class ProviderKeyRejected(KartaError):
    """The provider refused the credential when it was checked."""

    status = 422
    code = "provider_key_rejected"


class ProviderUnreachable(KartaError):
    status = 502
    code = "provider_unreachable"


class InvalidEndpoint(KartaError):
    status = 422
    code = "invalid_endpoint"


def checked_material(provider: str, given: dict[str, str]) -> dict[str, str]:
    """The credential with exactly the provider's fields, each a plausible value."""
    required, optional = MATERIAL[provider]
    unknown = sorted(set(given) - set(required) - set(optional))
    if unknown:
        raise InvalidProviderKey(
            f"a {provider} credential has no field {unknown[0]!r} "
            f"(it takes {', '.join((*required, *optional))})"
        )
    material = {k: v.strip() for k, v in given.items() if v.strip()}
    for name in required:
        if name not in material:
            raise InvalidProviderKey(f"a {provider} credential needs {name!r}")
    for name, value in material.items():
        if len(value) > 20_000 or (name != "service_account" and len(value) > 4096):
            raise InvalidProviderKey(f"{name!r} is too long")
    if "api_key" in material and len(material["api_key"]) < 12:
        raise InvalidProviderKey("'api_key' is too short to be a provider key")
    if "region" in material and not re.match(REGION_PATTERN, material["region"]):
        raise InvalidProviderKey("'region' is not a region name (e.g. us-east-1)")
    if provider == "vertex":
        if not re.match(GCP_PROJECT_PATTERN, material["project"]):
            raise InvalidProviderKey("'project' is not a Google Cloud project id")
        material["service_account"] = _service_account(material["service_account"])
    return material


def _service_account(text: str) -> str:
    try:
        info = json.loads(text)
    except ValueError as exc:
        raise InvalidProviderKey("'service_account' is not JSON (paste the key file)") from exc
    if not isinstance(info, dict) or info.get("type") != "service_account":
        raise InvalidProviderKey("'service_account' is not a service-account key file")
    for field in ("client_email", "private_key", "private_key_id"):
        if not isinstance(info.get(field), str) or not info[field]:
            raise InvalidProviderKey(f"'service_account' has no {field!r}")
    return json.dumps(info, separators=(",", ":"))


def last4(provider: str, material: dict[str, str]) -> str:
    """What the builder sees of a stored key: the last four characters of the part that names
    it (the API key, the AWS access key id, the service account's key id)."""
    if provider == "bedrock":
        return material["access_key_id"][-4:]
    if provider == "vertex":
        return str(json.loads(material["service_account"])["private_key_id"])[-4:]
    return material["api_key"][-4:]


async def verify(provider: str, material: dict[str, str], urls: ProviderURLs) -> None:
    """One cheap authenticated call: `ProviderKeyRejected` when the provider refuses the
    credential, `ProviderUnreachable` when it cannot say."""
    async with httpx.AsyncClient(timeout=CHECK_TIMEOUT) as client:
        try:
            status = await _probe(client, provider, material, urls)
        except TokenRefused as exc:
            status = exc.status if exc.status in (401, 403) else 401
        except (httpx.HTTPError, ValueError) as exc:
            raise ProviderUnreachable(
                f"could not check the key with {provider} ({type(exc).__name__}); "
                "retry, or store it unchecked with validate=false"
            ) from None
    if status in (400, 401, 403):
        raise ProviderKeyRejected(f"{provider} refused this credential ({status})")
    if status >= 300:
        raise ProviderUnreachable(
            f"{provider} answered {status} to the check; retry, or store it with validate=false"
        )


async def _probe(
    client: httpx.AsyncClient, provider: str, material: dict[str, str], urls: ProviderURLs
) -> int:
    if provider == "anthropic":
        headers = {"x-api-key": material["api_key"], "anthropic-version": ANTHROPIC_VERSION}
        return (await client.get(urls.at("anthropic") + "/v1/models", headers=headers)).status_code
    if provider in ("openai", "openrouter"):
        headers = {"authorization": f"Bearer {material['api_key']}"}
        # OpenRouter lists models to anyone: its key endpoint is the authenticated call.
        path = "/models" if provider == "openai" else "/v1/key"
        return (await client.get(urls.at(provider) + path, headers=headers)).status_code
    if provider == "bedrock":
        url = urls.at("bedrock", material["region"]) + "/foundation-models"
        signed = sigv4_headers("GET", url, b"", {}, material, "bedrock")
        return (await client.get(url, headers=signed)).status_code
    await vertex_token(client, material, urls.at("vertex_token"), int(time.time()))
    return 200


async def check_endpoint(url: str, *, allow_private: bool) -> str:
    """The endpoint URL, normalized (no trailing slash), or `InvalidEndpoint` saying why not."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
        port = parts.port
    except ValueError as exc:
        raise InvalidEndpoint("endpoint_url is not a URL") from exc
    if parts.scheme not in (("https", "http") if allow_private else ("https",)):
        raise InvalidEndpoint("endpoint_url must be an https URL")
    if not host or parts.username is not None or parts.password is not None:
        raise InvalidEndpoint("endpoint_url needs a host and no user or password")
    if parts.query or parts.fragment:
        raise InvalidEndpoint("endpoint_url may not carry a query or a fragment")
    if not allow_private:
        if _ip(host) is not None:
            raise InvalidEndpoint("endpoint_url may not be an IP address; use a host name")
        if host == "localhost" or host.endswith(LOCAL_SUFFIXES) or "." not in host:
            raise InvalidEndpoint("endpoint_url must be a public host")
        for address in await _addresses(host, port or 443):
            if not address.is_global:
                raise InvalidEndpoint("endpoint_url resolves to a private or local address")
    return url.strip().rstrip("/")


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


async def _addresses(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """What the host resolves to now; a name that does not resolve yet is let through (calls
    to it fail until it does)."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return []
    found = [_ip(str(info[4][0]).split("%")[0]) for info in infos]
    return [a for a in found if a is not None]
