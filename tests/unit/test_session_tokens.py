"""Session tokens: HS256 only, scope and expiry required, tampering and other secrets refused."""

from __future__ import annotations

import base64
import json
import time

import jwt

from karta.core import session_tokens as st

SECRET = "s" * 32


def _claims(**over: object) -> st.SessionClaims:
    base = {
        "org_id": 1,
        "org_slug": "acme",
        "project_id": 7,
        "project_slug": "bot",
        "exp": st.expiry(600),
        "sub": "user-1",
    }
    return st.SessionClaims(**{**base, **over})  # type: ignore[arg-type]


def test_round_trip() -> None:
    claims = _claims()
    assert st.verify(SECRET, st.mint(SECRET, claims)) == claims


def test_refusals() -> None:
    token = st.mint(SECRET, _claims())
    assert st.verify("other" * 8, token) is None
    assert st.verify(SECRET, st.mint(SECRET, _claims(exp=int(time.time()) - 1))) is None
    assert st.verify(SECRET, "kt_live_notatoken") is None
    head, body, sig = token.split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=="))
    payload["project_id"] = 8
    forged = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    assert st.verify(SECRET, f"{head}.{forged}.{sig}") is None
    unsigned = jwt.encode({**payload, "project_id": 7}, key="", algorithm="none")
    assert st.verify(SECRET, unsigned) is None
    other_scope = jwt.encode({**payload, "scope": "admin"}, SECRET, algorithm="HS256")
    assert st.verify(SECRET, other_scope) is None


def test_lifetime_is_capped_at_an_hour() -> None:
    assert st.expiry(10 * 3600) <= int(time.time()) + st.MAX_TTL
