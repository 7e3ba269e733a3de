"""End-user ids: what a builder's backend may name its users, checked the same way where a
session token is minted (`sub`) and where session metadata names one."""

from __future__ import annotations

import re

from karta.core.errors import InvalidEndUserId

# An end user's id as a builder's backend names it: an opaque, printable token.
END_USER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+\-]{0,127}")
# Anonymous browsers of an embed key are `anon:<random>` (`karta.core.embed`): no id a builder
# names may start so, so no verified user can be mistaken for an anonymous one, or the reverse.
ANONYMOUS_PREFIX = "anon:"


def check_end_user_id(value: object) -> str:
    """`value` as an end-user id, or 422 `invalid_end_user_id`."""
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise InvalidEndUserId("an end-user id must be a string")
    text = str(value)
    if not END_USER_ID.fullmatch(text):
        raise InvalidEndUserId(
            "an end-user id is 1 to 128 characters: letters, digits and . _ : @ + -, "
            "starting with a letter or digit"
        )
    if text.startswith(ANONYMOUS_PREFIX):
        raise InvalidEndUserId(f"end-user ids starting with {ANONYMOUS_PREFIX!r} are reserved")
    return text
