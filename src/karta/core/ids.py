"""Opaque, URL-safe, non-sequential identifiers (`sess_…`, `req_…`, `turn_…`)."""

import secrets


def new_id(prefix: str, nbytes: int = 18) -> str:
    """Return `<prefix>_<random>`; 18 bytes give 24 URL-safe characters."""
    return f"{prefix}_{secrets.token_urlsafe(nbytes)}"
