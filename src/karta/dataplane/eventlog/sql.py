"""Event log on the SQL store, with an in-process notifier for live tails and a memory tail that
serves recent reads without touching the database.

Appends are visible to readers at once and written to the database in batches by a background
flusher; an event that pauses or ends a turn (`input_required`, `done`) is written before anyone
sees it, so whatever a client was told a turn ended with is durable. A crash can lose the
unflushed middle of a running turn, which recovery then closes with `turn_aborted`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, deque
from collections.abc import AsyncIterator

from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import async_sessionmaker

from karta.core.events import PAUSING_TYPES, Event
from karta.dataplane.store.models import EventRow

log = logging.getLogger(__name__)
TAIL_SIZE = 2048  # newest events kept in memory per session
TAIL_SESSIONS = 1024  # sessions whose tails are kept (least recently appended go first)


class SqlEventLog:
    def __init__(self, sessions: async_sessionmaker) -> None:
        self._db = sessions
        self._last_seq: dict[str, int] = {}
        self._tail: OrderedDict[str, deque[Event]] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}
        self._changed: dict[str, asyncio.Event] = {}
        self._unwritten: list[Event] = []
        self._write_lock = asyncio.Lock()
        self._writer: asyncio.Task[None] | None = None

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
            event.seq = await self.last_seq(session_id) + 1
            event.session_id = session_id
            self._last_seq[session_id] = event.seq
            self._unwritten.append(event)
            if event.type in PAUSING_TYPES:
                await self.flush()
            elif self._writer is None or self._writer.done():
                self._writer = asyncio.create_task(self.flush())
            self._remember(event)
        waker = self._changed.pop(session_id, None)
        if waker is not None:
            waker.set()
        return event

    def _remember(self, event: Event) -> None:
        assert event.session_id is not None
        tail = self._tail.setdefault(event.session_id, deque(maxlen=TAIL_SIZE))
        tail.append(event)
        self._tail.move_to_end(event.session_id)
        while len(self._tail) > TAIL_SESSIONS:
            self._tail.popitem(last=False)  # later reads of that session go to the database

    async def flush(self) -> None:
        """Write every appended event to the database (in one transaction per batch)."""
        async with self._write_lock:
            batch, self._unwritten = self._unwritten, []
            if not batch:
                return
            rows = [
                {
                    "session_id": e.session_id,
                    "seq": e.seq,
                    "type": e.type,
                    "turn_id": e.turn_id,
                    "payload": e.to_dict(),
                }
                for e in batch
            ]
            try:
                async with self._db() as db, db.begin():
                    await db.execute(insert(EventRow), rows)
            except Exception:
                self._unwritten[:0] = batch  # keep them for the next attempt
                log.exception("writing %d events failed; will retry", len(batch))
                raise

    async def read(self, session_id: str, after: int = 0, limit: int | None = None) -> list[Event]:
        tail = self._tail.get(session_id)
        if tail and tail[0].seq is not None and tail[0].seq <= after + 1:
            events = [e for e in tail if e.seq is not None and e.seq > after]
        else:
            await self.flush()
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
            await self.flush()
            async with self._db() as db, db.begin():
                await db.execute(
                    delete(EventRow).where(
                        EventRow.session_id == session_id, EventRow.seq <= last - keep
                    )
                )

    async def close(self) -> None:
        await self.flush()
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)
