"""Event log on the SQL store, with an in-process notifier for live tails and a memory tail that
serves recent reads without touching the database."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import async_sessionmaker

from karta.events import Event
from karta.store.models import EventRow

TAIL_SIZE = 2048


class SqlEventLog:
    def __init__(self, sessions: async_sessionmaker) -> None:
        self._db = sessions
        self._last_seq: dict[str, int] = {}
        self._tail: dict[str, deque[Event]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._changed: dict[str, asyncio.Event] = {}

    def _lock(self, session_id: str) -> asyncio.Lock:
        return self._locks.setdefault(session_id, asyncio.Lock())

    async def last_seq(self, session_id: str) -> int:
        if session_id not in self._last_seq:
            async with self._db() as db:
                value = await db.scalar(
                    select(func.max(EventRow.seq)).where(EventRow.session_id == session_id)
                )
            self._last_seq.setdefault(session_id, int(value or 0))
        return self._last_seq[session_id]

    async def append(self, session_id: str, event: Event) -> Event:
        async with self._lock(session_id):
            seq = await self.last_seq(session_id) + 1
            event.seq = seq
            event.session_id = session_id
            async with self._db() as db, db.begin():
                db.add(
                    EventRow(
                        session_id=session_id,
                        seq=seq,
                        type=event.type,
                        turn_id=event.turn_id,
                        payload=event.to_dict(),
                    )
                )
            self._last_seq[session_id] = seq
            self._tail.setdefault(session_id, deque(maxlen=TAIL_SIZE)).append(event)
        waker = self._changed.pop(session_id, None)
        if waker is not None:
            waker.set()
        return event

    async def read(self, session_id: str, after: int = 0, limit: int | None = None) -> list[Event]:
        tail = self._tail.get(session_id)
        if tail and tail[0].seq is not None and tail[0].seq <= after + 1:
            events = [e for e in tail if e.seq is not None and e.seq > after]
        else:
            query = (
                select(EventRow.payload)
                .where(EventRow.session_id == session_id, EventRow.seq > after)
                .order_by(EventRow.seq)
            )
            async with self._db() as db:
                events = [Event.from_dict(p) for p in (await db.scalars(query)).all()]
        return events[:limit] if limit is not None else events

    async def subscribe(
        self, session_id: str, after: int = 0, keepalive: float = 15.0
    ) -> AsyncIterator[Event | None]:
        """Replay everything after `after`, then tail live. Yields None as a keep-alive tick."""
        while True:
            waker = self._changed.setdefault(session_id, asyncio.Event())
            events = await self.read(session_id, after)
            for event in events:
                yield event
                after = event.seq or after
            if events:
                continue
            try:
                await asyncio.wait_for(waker.wait(), keepalive)
            except TimeoutError:
                yield None

    async def prune(self, session_id: str, keep: int) -> None:
        """Bound the stored log: drop all but the newest `keep` events of a session."""
        last = await self.last_seq(session_id)
        if last > keep:
            async with self._db() as db, db.begin():
                await db.execute(
                    delete(EventRow).where(
                        EventRow.session_id == session_id, EventRow.seq <= last - keep
                    )
                )

    def forget(self, session_id: str) -> None:
        """Drop the in-memory state of a session (after it ended)."""
        self._tail.pop(session_id, None)
        self._last_seq.pop(session_id, None)
        self._locks.pop(session_id, None)
