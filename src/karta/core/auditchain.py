"""The audit log's hash chain, shared by the control plane (which extends it) and
`karta audit verify` (which checks it from the rows the API returns).

Each row's hash covers its content and the previous row's hash, so editing, deleting or
reordering any row breaks every later link; the head (last seq and hash) pins the end.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

GENESIS = "0" * 64
HASHED_FIELDS = (
    "organization_id",
    "seq",
    "actor_type",
    "actor_id",
    "action",
    "resource_type",
    "resource_id",
    "request_id",
    "ip",
    "details",
    "created_at",
)


def link_hash(prev_hash: str, row: Mapping[str, Any]) -> str:
    content = {name: row.get(name) for name in HASHED_FIELDS}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{prev_hash}\n{canonical}".encode()).hexdigest()


@dataclass(frozen=True)
class Verdict:
    ok: bool
    checked: int
    problem: str | None = None
    seq: int | None = None


def verify(rows: Iterable[Mapping[str, Any]], head: Mapping[str, Any] | None = None) -> Verdict:
    """Check rows given in seq order, from seq 1, against each other and the chain head."""
    prev, expected, checked = GENESIS, 1, 0
    for row in rows:
        seq = int(row["seq"])
        if seq != expected:
            return Verdict(False, checked, f"expected seq {expected}, found {seq}", seq)
        if row["prev_hash"] != prev:
            return Verdict(False, checked, "prev_hash does not match the previous row", seq)
        if link_hash(prev, row) != row["hash"]:
            return Verdict(False, checked, "row content does not match its hash", seq)
        prev, expected, checked = row["hash"], expected + 1, checked + 1
    if head is not None and (int(head["seq"]) != checked or head["hash"] != prev):
        return Verdict(False, checked, "the chain ends before its recorded head", checked)
    return Verdict(True, checked)
