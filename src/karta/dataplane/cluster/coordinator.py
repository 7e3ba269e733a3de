"""What data-plane replicas coordinate through beyond their shared database: session leases
(who owns a session now) and event wake-ups (a session's log grew). One small interface, two
backends chosen by configuration only: `InProcess` for one server (the embedded mode) and
`RedisCoordinator` (`cluster/redis.py`) for replicas.

The event log stays the source of truth: a wake-up says "session S has events up to seq N" and
carries those just written, when they are small. A replica whose memory of the log ends right
before them takes them as they are; any other reads them from the database. A lost wake-up
delays a reader until its next periodic read, it never loses an event.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol

from karta.core.events import Event

CARRIED_BYTES = 32 * 1024  # a wake-up whose events are larger says only where the log ends


@dataclass(frozen=True)
class Wake:
    origin: str  # the replica that appended the events
    session_id: str
    seq: int  # the session's newest durable event
    events: tuple[dict[str, Any], ...] = ()  # the newest ones, in seq order (may be none)

    @classmethod
    def carrying(cls, origin: str, session_id: str, events: Sequence[Event]) -> Wake:
        """The wake-up for `events`, just written, carrying them unless they are too large."""
        payloads = tuple(event.to_dict() for event in events)
        wake = cls(origin, session_id, events[-1].seq or 0, payloads)
        return wake if len(wake.encoded) <= CARRIED_BYTES else cls(origin, session_id, wake.seq)

    @cached_property
    def encoded(self) -> str:
        return json.dumps([self.origin, self.session_id, self.seq, self.events])

    @classmethod
    def decode(cls, raw: str | bytes) -> Wake:
        # A replica of a version before events were carried sends three fields.
        origin, session_id, seq, *rest = json.loads(raw)
        events = rest[0] if rest and isinstance(rest[0], list) else []
        return cls(str(origin), str(session_id), int(seq), tuple(events))


OnWake = Callable[[Wake], None]
OnResync = Callable[[], None]  # wake-ups may have been missed: every reader should look again


class Coordinator(Protocol):
    # Whether other replicas coordinate through it too. Without them, no owner but this very
    # process can hold a session, so none can die under a live turn while this one runs.
    shared: bool

    async def start(self, on_wake: OnWake, on_resync: OnResync) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> str | None:
        """None when the backend answers, else why not (for /readyz)."""
        ...

    async def publish(self, wakes: list[Wake]) -> None: ...

    async def acquire(self, key: str, value: str, ttl: float) -> bool:
        """Take the lease `key` for `ttl` seconds if nobody holds it."""
        ...

    async def extend(self, leases: dict[str, str], ttl: float) -> set[str]:
        """Renew each lease still held with its value; returns the keys that were lost."""
        ...

    async def release(self, key: str, value: str) -> None:
        """Give up the lease, if it is still held with `value`."""
        ...

    async def holders(self, keys: list[str]) -> list[str | None]:
        """The value each lease is held with (None: free)."""
        ...


class InProcess:
    """One server: leases in a dict, wake-ups handed straight to the one listener. A lease here
    never expires by itself: its holder is this very process, which cannot die without every
    claimant dying with it."""

    shared = False

    def __init__(self) -> None:
        self._leases: dict[str, str] = {}
        self._on_wake: OnWake | None = None

    async def start(self, on_wake: OnWake, on_resync: OnResync) -> None:
        self._on_wake = on_wake

    async def close(self) -> None:
        self._on_wake = None

    async def ping(self) -> str | None:
        return None

    async def publish(self, wakes: list[Wake]) -> None:
        if self._on_wake is not None:
            for wake in wakes:
                self._on_wake(wake)

    async def acquire(self, key: str, value: str, ttl: float) -> bool:
        if key in self._leases:
            return False
        self._leases[key] = value
        return True

    async def extend(self, leases: dict[str, str], ttl: float) -> set[str]:
        return {key for key, value in leases.items() if self._leases.get(key) != value}

    async def release(self, key: str, value: str) -> None:
        if self._leases.get(key) == value:
            del self._leases[key]

    async def holders(self, keys: list[str]) -> list[str | None]:
        return [self._leases.get(key) for key in keys]
