"""What a caller may ask for when listing sessions (the repository turns it into SQL)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class SessionFilter:
    """What `GET /v1/sessions` narrows to (all optional; `None` is no constraint)."""

    organization_id: int | None
    project_id: int | None = None
    end_user: str | None = None  # only sessions of this end user
    anonymous_only: bool = False  # only sessions that belong to no end user
    status: str | None = None
    agent: str | None = None
    active: bool | None = None  # a turn running or awaiting input
    metadata: tuple[tuple[str, str], ...] = ()
    before: tuple[datetime, str] | None = None  # the cursor: (created_at, id) of the last row
