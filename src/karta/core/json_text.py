"""JSON that parses but cannot be written back: an escaped half of a surrogate pair
(`"\\ud800"`) becomes a Python string no UTF-8 encoder accepts, and `NaN`, `Infinity` or
`1e999` become floats that strict JSON cannot hold. Either would pass a loosely typed field
(`metadata`, tool input) and fail later — in the database driver or while rendering the
response — as a 500. `unwritable` finds the first such value and names its field, so the
request is refused up front instead (see `karta.core.http_limits`).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

# Only a body holding one of these can decode to an unwritable value, so the common body is
# scanned once and never parsed twice. Long digit runs and 3-digit exponents may overflow.
_SUSPECT = re.compile(rb"\\u[dD][89a-fA-F]|NaN|Infinity|[eE][+-]?\d{3}|\d{300}")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _problem(value: Any) -> str | None:
    if isinstance(value, str) and _SURROGATE.search(value):
        return "holds an unpaired UTF-16 surrogate (\\ud800-\\udfff), which no text can carry"
    if isinstance(value, float) and not math.isfinite(value):
        return "is not a finite number"
    return None


def unwritable(raw: bytes) -> tuple[str, str] | None:
    """`(field, problem)` for the first unwritable value in the JSON document `raw`, or None —
    also when `raw` is not JSON at all, which the application reports in its own words."""
    if not _SUSPECT.search(raw):
        return None
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    # Depth first in document order, iteratively so deep nesting cannot exhaust the stack.
    pending: list[tuple[tuple[str, ...], Any]] = [((), document)]
    while pending:
        path, value = pending.pop()
        field = ".".join(path) or "body"
        if isinstance(value, dict):
            for key in value:
                if problem := _problem(key):
                    return field, f"a key {problem}"
            pending.extend(((*path, key), item) for key, item in reversed(value.items()))
        elif isinstance(value, list):
            pending.extend(((*path, str(n)), value[n]) for n in reversed(range(len(value))))
        elif problem := _problem(value):
            return field, problem
    return None
