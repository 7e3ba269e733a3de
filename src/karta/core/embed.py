"""Publishable embed keys (`pk_live_…`) and what both planes check about the browsers that use
them: origins, themes, and the identity of the end user.

- An **origin** is exactly `scheme://host[:port]` (http or https, no path, no wildcard); the
  default port is dropped, so `https://shop.example:443` and `https://shop.example` are one.
- A **theme** is a small map of the widget's CSS custom properties (`accent` becomes
  `--karta-accent`), each value a short, inert CSS token: no `;`, braces, quotes, `url(` or `<`.
- A **verified** end user is a `user_id` that the builder's backend signed: the identity token
  is the hex HMAC-SHA256 of the user id under the key's identity secret. An **anonymous** end
  user is a random id the browser keeps; as a session token's `sub` it is namespaced
  (`anon:…`), and no verified user id may start with that namespace, so an anonymous browser
  can never become, or read the sessions of, a verified user.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from urllib.parse import urlsplit

from karta.core.api_keys import random_string
from karta.core.end_users import ANONYMOUS_PREFIX
from karta.core.errors import BadRequest, Forbidden, KartaError, NotFound

PREFIX = "pk_live_"
LENGTH = len(PREFIX) + 32
IDENTITY_SECRET_PREFIX = "whsec_id_"
MAX_ORIGINS = 20
ANONYMOUS_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")

# The widget's themable custom properties (`--karta-<name>`), and what each value may be.
THEME_PROPERTIES = (
    "accent",
    "accent-text",
    "background",
    "surface",
    "text",
    "muted",
    "border",
    "user-bubble",
    "user-text",
    "radius",
    "font-family",
    "font-size",
)
THEME_VALUE = re.compile(r"[A-Za-z0-9#%.,()\s\-_/+]{1,80}")
MAX_THEME_BYTES = 2048


class InvalidOrigin(ValueError):
    pass


# --- what a browser is told when it is refused ----------------------------------------------------


class MissingOrigin(BadRequest):
    code = "missing_origin"


class OriginNotAllowed(Forbidden):
    code = "origin_not_allowed"


class KeyDisabled(Forbidden):
    code = "key_disabled"


class IdentityInvalid(Forbidden):
    code = "identity_invalid"


class AnonymousNotAllowed(Forbidden):
    code = "anonymous_not_allowed"


class UnknownEmbedKey(NotFound):
    code = "embed_key_not_found"


class InvalidAnonymousId(KartaError):
    status = 422
    code = "invalid_anonymous_id"


def new_embed_key() -> str:
    return PREFIX + random_string(LENGTH - len(PREFIX))


def looks_like_embed_key(value: str) -> bool:
    return value.startswith(PREFIX) and len(value) == LENGTH and value[len(PREFIX) :].isalnum()


def new_identity_secret() -> str:
    return IDENTITY_SECRET_PREFIX + secrets.token_urlsafe(32)


def normalize_origin(text: str) -> str:
    """`text` as a canonical origin, or `InvalidOrigin` saying why it is not one."""
    if "*" in text:
        raise InvalidOrigin(f"{text!r}: wildcards are not allowed, name each origin")
    if not text.isascii() or any(c.isspace() for c in text):
        raise InvalidOrigin(f"{text!r}: an origin is ASCII without spaces (punycode for IDNs)")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise InvalidOrigin(f"{text!r}: {exc}") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidOrigin(f"{text!r}: an origin is http(s)://host[:port]")
    if parts.path not in ("", "/") or parts.query or parts.fragment or "@" in parts.netloc:
        raise InvalidOrigin(f"{text!r}: an origin has no path, query, fragment or user")
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"  # an IPv6 literal
    default = 443 if parts.scheme == "https" else 80
    return f"{parts.scheme}://{host}" + (f":{port}" if port not in (None, default) else "")


def origin_or_none(text: str | None) -> str | None:
    """A request's `Origin` header as a canonical origin; None when absent, `null` or bad."""
    if not text or text == "null":
        return None
    try:
        return normalize_origin(text)
    except InvalidOrigin:
        return None


def check_admitted(
    enabled: bool, allowed: list[str], hosted_page: bool, origin: str, own: str | None
) -> None:
    """Refuse (403) a page at `origin` unless the key is enabled and allows it: one of its
    origins, or the data plane's own (`own`, its hosted page) when the key serves that page."""
    if not enabled:
        raise KeyDisabled("this embed key is disabled")
    canonical = origin_or_none(origin)
    if canonical is None:
        raise OriginNotAllowed("the request's Origin is not an origin")
    if canonical in allowed or (hosted_page and own is not None and canonical == own):
        return
    raise OriginNotAllowed(f"{canonical} is not an allowed origin of this embed key")


def check_theme(theme: object) -> dict[str, str]:
    """`theme` if every name is a themable property and every value inert CSS, else
    ValueError naming the first offender."""
    if not isinstance(theme, dict):
        raise ValueError("theme: an object of CSS custom-property values")
    out: dict[str, str] = {}
    for name, value in theme.items():
        if name not in THEME_PROPERTIES:
            known = ", ".join(THEME_PROPERTIES)
            raise ValueError(f"theme: unknown property {name!r} (one of {known})")
        if not isinstance(value, str) or not THEME_VALUE.fullmatch(value) or "url(" in value:
            raise ValueError(f"theme: {name} must be a short CSS value (colors, lengths, fonts)")
        out[name] = value.strip()
    if len(repr(out)) > MAX_THEME_BYTES:
        raise ValueError("theme: too large")
    return out


def identity_token(secret: str, user_id: str) -> str:
    """What the builder's backend computes for a signed-in user: hex HMAC-SHA256 of the id."""
    return hmac.new(secret.encode(), user_id.encode(), hashlib.sha256).hexdigest()


def identity_matches(secret: str, user_id: str, token: str) -> bool:
    return hmac.compare_digest(identity_token(secret, user_id), token.strip().lower())


def new_anonymous_id() -> str:
    return secrets.token_urlsafe(18)


def anonymous_sub(anonymous_id: str) -> str:
    """The session-token `sub` of an anonymous browser, namespaced away from verified ids."""
    if not ANONYMOUS_ID.fullmatch(anonymous_id):
        raise ValueError("anonymous_id must be 16 to 64 letters, digits, _ or -")
    return ANONYMOUS_PREFIX + anonymous_id
