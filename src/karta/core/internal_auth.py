"""The guard on both planes' internal APIs: a service token from a configured set, plus optional
source-IP and Host allowlists.

A caller outside the allowlists gets the same 404 as an unknown path, so a leaked token replayed
from elsewhere learns nothing; with no token configured the surface answers 503, never open.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from dataclasses import dataclass, field

from fastapi import Request
from starlette.exceptions import HTTPException

from karta.core.errors import Unauthorized, Unavailable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _split(value: str | None) -> list[str]:
    return [item.strip() for item in (value or "").split(",") if item.strip()]


@dataclass(frozen=True)
class InternalAccess:
    tokens: tuple[str, ...] = ()
    networks: tuple[Network, ...] = ()
    hosts: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def from_env(cls) -> InternalAccess:
        tokens = _split(os.environ.get("KARTA_SERVICE_TOKENS"))
        tokens += _split(os.environ.get("KARTA_SERVICE_TOKEN"))
        return cls.build(
            tokens,
            tuple(_split(os.environ.get("KARTA_INTERNAL_ALLOWED_IPS"))),
            tuple(_split(os.environ.get("KARTA_INTERNAL_HOSTS"))),
        )

    @classmethod
    def build(
        cls, tokens: list[str], networks: tuple[str, ...] = (), hosts: tuple[str, ...] = ()
    ) -> InternalAccess:
        """Unparsable CIDRs fail here, at boot, not on the first request."""
        try:
            parsed = tuple(ipaddress.ip_network(n, strict=False) for n in networks)
        except ValueError as exc:
            raise ValueError(f"KARTA_INTERNAL_ALLOWED_IPS: {exc}") from exc
        return cls(tuple(sorted(set(tokens))), parsed, frozenset(h.lower() for h in hosts))

    @property
    def outbound_token(self) -> str | None:
        """The token this plane presents: the alphabetically first, so rotation is predictable."""
        return self.tokens[0] if self.tokens else None

    def _client_ip(self, request: Request) -> str | None:
        forwarded = _split(request.headers.get("x-forwarded-for"))
        if forwarded:
            return forwarded[-1]
        return request.client.host if request.client else None

    def _allowed(self, request: Request) -> bool:
        if self.hosts:
            host = (request.headers.get("host") or "").rsplit(":", 1)[0].lower()
            if host not in self.hosts:
                return False
        if self.networks:
            try:
                ip = ipaddress.ip_address(self._client_ip(request) or "")
            except ValueError:
                return False
            if not any(ip in net for net in self.networks):
                return False
        return True

    def _presents_token(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        scheme, _, presented = header.partition(" ")
        presented = presented.strip()
        valid = False
        for token in self.tokens:  # compare with every token, so timing says nothing
            valid |= hmac.compare_digest(presented.encode(), token.encode())
        return scheme.lower() == "bearer" and valid

    def check(self, request: Request) -> None:
        if not self._allowed(request):
            raise HTTPException(404, "Not Found")
        if not self.tokens:
            raise Unavailable("the internal API has no service token configured", retry_after=30)
        if not self._presents_token(request):
            raise Unauthorized("invalid service token")

    def is_service(self, request: Request) -> bool:
        """Whether the caller is another plane or instance: a service token, from where the
        allowlists admit (a public route that also takes other credentials asks this)."""
        return bool(self.tokens) and self._allowed(request) and self._presents_token(request)


async def require_service(request: Request) -> None:
    """FastAPI dependency: the app's `state.internal_access` guards the route."""
    request.app.state.internal_access.check(request)
