"""Authenticating to providers whose credential is not a bearer key, for both planes (the control
plane checks a key when it is set, the data plane's model proxy uses it): AWS SigV4 (Bedrock,
signed by botocore) and a Google service account's OAuth token (Vertex, the JWT signed by
google-auth, exchanged at the token endpoint over httpx).

Nothing here logs; an error message never carries credential material."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from google.auth import crypt, jwt

VERTEX_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TOKEN_LIFETIME = 3600


def sigv4_headers(
    method: str,
    url: str,
    body: bytes,
    headers: dict[str, str],
    material: dict[str, str],
    service: str,
) -> dict[str, str]:
    """`headers` plus the SigV4 signature (`authorization`, `x-amz-date`, and the session
    token when the key has one) for this exact request."""
    credentials = Credentials(
        material["access_key_id"], material["secret_access_key"], material.get("session_token")
    )
    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers))
    SigV4Auth(credentials, service, material["region"]).add_auth(request)
    return {k: str(v) for k, v in request.headers.items()}


class TokenRefused(Exception):
    """The token endpoint refused the service account (its status, never its material)."""

    def __init__(self, status: int) -> None:
        super().__init__(f"the token endpoint answered {status}")
        self.status = status


@dataclass(frozen=True)
class AccessToken:
    value: str
    expires_in: int

    def __repr__(self) -> str:
        return f"AccessToken(<redacted>, expires_in={self.expires_in})"


def service_account(material: dict[str, str]) -> dict[str, Any]:
    info = json.loads(material["service_account"])
    if not isinstance(info, dict):
        raise ValueError("the service account is not a JSON object")
    return info


def assertion(material: dict[str, str], token_url: str, now: int) -> str:
    """The signed JWT a service account exchanges for an access token."""
    info = service_account(material)
    signer = crypt.RSASigner.from_service_account_info(info)
    claims = {
        "iss": info["client_email"],
        "scope": VERTEX_SCOPE,
        "aud": token_url,
        "iat": now,
        "exp": now + TOKEN_LIFETIME,
    }
    return jwt.encode(signer, claims).decode()


async def vertex_token(
    client: httpx.AsyncClient, material: dict[str, str], token_url: str, now: int
) -> AccessToken:
    """An access token for the service account. The operator's token endpoint is used, never
    the `token_uri` the service-account file names: that is the customer's text, and the proxy
    must not post signed assertions wherever it points."""
    form = {"grant_type": JWT_BEARER, "assertion": assertion(material, token_url, now)}
    answer = await client.post(token_url, data=form)
    if answer.status_code != 200:
        raise TokenRefused(answer.status_code)
    body = answer.json()
    return AccessToken(str(body["access_token"]), int(body.get("expires_in") or TOKEN_LIFETIME))
