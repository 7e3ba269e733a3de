"""Event log on the SQL store, shared by every replica, with a memory tail that serves recent
reads without touching the database and wake-ups that tell subscribers, on this replica and on
the others, that a session's log grew.

Only a session's owner appends to its log (`holds(session_id)`; an append for a session this
replica no longer owns is dropped, so a replica that lost its lease cannot write over its
successor). Appends are written to the database in batches by a background flusher, and an
event is shown to nobody before it is written: readers on the owner are woken from the memory
tail once the batch is committed, the other replicas by a wake-up (`Coordinator.publish`) that
carries the events the database stored. Each adds them to its own tail when they follow it (else
it reads them from the database once) and serves its own subscribers from there. The wake-up
leaves before the owner serves its own readers (with no other replica, an in-process
coordinator, the readers are woken at once), and a live reader never waits on a write:
fanning an event out to a thousand streams costs each replica one encoding and no read. An
event that pauses or ends a turn (`input_required`, `done`) is written before `append` returns,
and its appender goes on before anyone is shown it (whichever flush wrote it): a client that
hears a turn ended never finds it still running. A crash can lose the unwritten middle of a
running turn, which nobody has seen; whoever adopts the session next closes the turn.

Subscribers re-read every `poll` seconds even without a wake-up, so one lost while the
coordinator was unreachable delays them, it never stalls them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import async_sessionmaker

from karta.core import db as store
from karta.core.clock import SYSTEM, Clock
from karta.core.events import PAUSING_TYPES, Event
from karta.dataplane.cluster.coordinator import Coordinator, InProcess, Wake
from karta.dataplane.store.models import EventRow

log = logging.getLogger(__name__)
TAIL_SIZE = 2048  # newest events kept in memory per session
TAIL_SESSIONS = 1024  # sessions whose tails are kept (least recently appended go first)
HEAD_START = 0.005  # how long this replica's readers wait for a wake-up to reach the others


class SqlEventLog:
    def __init__(
        self,
        sessions: async_sessionmaker,
        coordinator: Coordinator | None = None,  # wake-ups leave through it, arrive at `woken`
        *,
        replica: str = "local",
        holds: Callable[[str], bool] = lambda _: True,
        poll: float = 5.0,
        clock: Clock = SYSTEM,
    ) -> None:
        self._db = sessions
        self.coordinator = coordinator or InProcess()
        self.replica = replica
        self.holds = holds
        self.poll = poll
        self._clock = clock
        self._last_seq: dict[str, int] = {}  # the owner's counter, per session
        self._tail: OrderedDict[str, deque[Event]] = OrderedDict()  # written events only
        self._synced: dict[str, float] = {}  # a non-owner's last read of the database
        self._syncing: dict[str, asyncio.Future[None]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._changed: dict[str, _Waker] = {}
        self._unwritten: list[Event] = []
        # Resolved when the batch holding what is unwritten now is committed (made when a
        # pausing event waits for it).
        self._batch_written: asyncio.Future[None] | None = None
        self._write_lock = asyncio.Lock()
        self._writer: asyncio.Task[None] | None = None
        self._publishing: set[asyncio.Task[None]] = set()

    def _lock(self, session_id: str) -> asyncio.Lock:
        return self._locks.setdefault(session_id, asyncio.Lock())

    async def last_seq(self, session_id: str) -> int:
        if session_id in self._last_seq and self.holds(session_id):
            return self._last_seq[session_id]
        async with self._db() as db:
            value = int(
                await db.scalar(
                    select(func.max(EventRow.seq)).where(EventRow.session_id == session_id)
                )
                or 0
            )
        if self.holds(session_id):
            self._last_seq.setdefault(session_id, value)
            return self._last_seq[session_id]
        return value

    async def append(self, session_id: str, event: Event) -> Event:
        if not self.holds(session_id):
            log.warning("dropped a %s event of session %s: not its owner", event.type, session_id)
            return event
        async with self._lock(session_id):
            event.seq = await self.last_seq(session_id) + 1
            event.session_id = session_id
            self._last_seq[session_id] = event.seq
            self._unwritten.append(event)
            written = None
            if event.type in PAUSING_TYPES:
                if self._batch_written is None:
                    self._batch_written = asyncio.get_running_loop().create_future()
                written = self._batch_written
            if self._writer is None or self._writer.done():
                self._writer = asyncio.create_task(self._write_all())
            if written is not None:
                # Whichever flush commits the event resolves this before anyone is shown the
                # event, so the caller (a turn's `done`) goes on first: a client that hears
                # of the end never finds the turn still running.
                await written
        return event

    async def _write_all(self) -> None:
        while self._unwritten:
            await self.flush()

    async def flush(self) -> bool:
        """Write every appended event to the database (one transaction per batch), then show
        them: to this replica's readers from the tail, to the others by a wake-up. Returns
        whether a pausing event's `append` was waiting for this batch."""
        async with self._write_lock:
            batch, self._unwritten = self._unwritten, []
            written, self._batch_written = self._batch_written, None
            try:
                stored = await self._insert(batch) if batch else set()
            except Exception as exc:
                self._unwritten[:0] = batch  # keep them for the next attempt
                log.exception("writing %d events failed; will retry", len(batch))
                # Every pausing append waiting on what is unwritten hears of it (the
                # background writer stops here until the next append starts it again).
                for waiting in (written, self._batch_written):
                    if waiting is not None:
                        waiting.set_exception(exc)
                self._batch_written = None
                raise
            by_session: dict[str, list[Event]] = {}
            for event in batch:
                assert event.session_id is not None
                if (event.session_id, event.seq) in stored:  # else a successor's stands
                    self._remember(event)
                    by_session.setdefault(event.session_id, []).append(event)
            if written is not None:
                written.set_result(None)
            if not self.coordinator.shared:  # no other replica to tell: readers here, now
                for session_id in by_session:
                    self._wake(session_id)
                return written is not None
            if not by_session:
                return written is not None
        # In the background: the caller (a turn's `done`) goes on before anyone, here or on
        # another replica, sees what was written.
        wakes = [Wake.carrying(self.replica, sid, events) for sid, events in by_session.items()]
        task = asyncio.create_task(self._publish(wakes))
        self._publishing.add(task)
        task.add_done_callback(self._publishing.discard)
        return written is not None

    async def _insert(self, batch: list[Event]) -> set[tuple[str, int]]:
        """Write a batch in one transaction (on PostgreSQL, one statement that commits by
        itself); the (session, seq) pairs it stored."""
        async with self._db() as db:
            dialect = db.bind.dialect.name
            await db.connection(execution_options=store.one_statement(dialect, len(batch)))
            statement = _insert_ignoring_taken(dialect).returning(EventRow.session_id, EventRow.seq)
            stored = {(sid, seq) for sid, seq in (await db.execute(statement, _rows(batch)))}
            await db.commit()
            return stored

    async def _publish(self, wakes: list[Wake]) -> None:
        """Wake the other replicas, then this one's readers: serving a thousand streams here
        takes the loop for tens of milliseconds, which the wake-up must not wait behind (it
        waits at most `HEAD_START` for the coordinator, so a slow one never holds readers)."""
        sending = asyncio.ensure_future(self._send(wakes))
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(sending), HEAD_START)
        finally:
            for wake in wakes:
                self._wake(wake.session_id)
        await sending

    async def _send(self, wakes: list[Wake]) -> None:
        try:
            await self.coordinator.publish(wakes)
        except Exception as exc:  # the others find the events on their next periodic read
            log.warning("publishing wake-ups failed: %s", type(exc).__name__)

    def _remember(self, event: Event) -> None:
        assert event.session_id is not None
        tail = self._tail.setdefault(event.session_id, deque(maxlen=TAIL_SIZE))
        if tail and (event.seq or 0) <= (tail[-1].seq or 0):
            return  # known already (a wake-up brought it while a read was under way)
        if tail and (tail[-1].seq or 0) + 1 != event.seq:
            tail.clear()  # not contiguous: start over from this event
        tail.append(event)
        self._tail.move_to_end(event.session_id)
        while len(self._tail) > TAIL_SESSIONS:
            self._tail.popitem(last=False)  # later reads of that session go to the database

    def _waker(self, session_id: str) -> _Waker:
        """What the readers of a session wait on: one for all of them, set when its log grows
        (or when the earliest of them wants to look again, `_Waker.due`)."""
        waker = self._changed.get(session_id)
        if waker is None:
            waker = self._changed[session_id] = _Waker()
        return waker

    def _due(self, session_id: str, waker: _Waker, seconds: float) -> None:
        """Set `waker` in `seconds` at the latest: one timer per session, however many wait
        (a thousand streams each with a deadline of its own cost a timer per event each)."""
        due = self._clock.monotonic() + seconds
        if waker.event.is_set() or (waker.timer is not None and waker.due <= due):
            return
        if waker.timer is not None:
            waker.timer.cancel()
        waker.due = due
        waker.timer = asyncio.ensure_future(self._ring(session_id, waker, seconds))

    async def _ring(self, session_id: str, waker: _Waker, seconds: float) -> None:
        await self._clock.sleep(seconds)
        waker.timer = None  # done: setting it must not cancel this very task
        if self._changed.get(session_id) is waker:  # else `_wake` set it, and cancelled this
            self._wake(session_id)

    def _wake(self, session_id: str) -> None:
        waker = self._changed.pop(session_id, None)
        if waker is not None:
            waker.set()

    def woken(self, wake: Wake) -> None:
        """Another replica wrote events of a session: readers here look again, in the tail
        when the wake-up brought the events that follow it, else in the database."""
        if wake.origin == self.replica:
            return
        tail = self._tail.get(wake.session_id)
        first = wake.events[0].get("seq") if wake.events else None
        if tail and first == (tail[-1].seq or 0) + 1 and not self.holds(wake.session_id):
            for payload in wake.events:
                self._remember(Event.from_dict(payload))
        else:
            self._synced.pop(wake.session_id, None)
        self._wake(wake.session_id)

    def resync(self) -> None:
        """Wake-ups may have been missed: every session's readers look again."""
        self._synced.clear()
        for session_id in list(self._changed):
            self._wake(session_id)

    def forget(self, session_id: str) -> None:
        """This replica's ownership of the session began or ended: what it remembers of the
        log may be stale (another replica may have written since), and events it had not
        written yet belong to a turn it no longer runs."""
        self._last_seq.pop(session_id, None)
        self._tail.pop(session_id, None)
        self._synced.pop(session_id, None)
        self._unwritten = [e for e in self._unwritten if e.session_id != session_id]
        if not self._unwritten and self._batch_written is not None:
            self._batch_written.set_result(None)  # nothing is left for it to wait for
            self._batch_written = None
        self._wake(session_id)

    async def _sync(self, session_id: str, fresh: bool) -> None:
        """On a replica that does not own the session: read what it has not seen yet from the
        database, once for all its readers (and, unless `fresh`, at most once per `poll`
        without a wake-up)."""
        synced = self._synced.get(session_id)
        if not fresh and synced is not None and self._clock.monotonic() - synced < self.poll:
            return
        running = self._syncing.get(session_id)
        if running is None:
            running = self._syncing[session_id] = asyncio.ensure_future(self._fetch(session_id))
            running.add_done_callback(lambda _: self._syncing.pop(session_id, None))
        await asyncio.shield(running)

    async def _fetch(self, session_id: str) -> None:
        tail = self._tail.get(session_id)
        if not tail:
            return  # nothing to extend: readers go to the database
        self._synced[session_id] = self._clock.monotonic()
        for event in await self._select(session_id, tail[-1].seq or 0):
            self._remember(event)

    async def _select(self, session_id: str, after: int) -> list[Event]:
        query = (
            select(EventRow.payload)
            .where(EventRow.session_id == session_id, EventRow.seq > after)
            .order_by(EventRow.seq)
        )
        async with self._db() as db:
            return [Event.from_dict(p) for p in (await db.scalars(query)).all()]

    async def read(
        self, session_id: str, after: int = 0, limit: int | None = None, *, fresh: bool = False
    ) -> list[Event]:
        """The events after `after`. `fresh`: everything written so far, on any replica (a
        subscriber's later reads may lag by a wake-up, never more)."""
        # What was appended is shown once written, and then at once: a batch being written
        # now is waited for too. A pausing event's appender goes on first.
        owner = self.holds(session_id)
        if owner and (fresh or self._unwritten or self._write_lock.locked()) and await self.flush():
            await asyncio.sleep(0)
        return await self._written(session_id, after, limit, fresh=fresh)

    async def _written(
        self, session_id: str, after: int, limit: int | None = None, *, fresh: bool = False
    ) -> list[Event]:
        """The events after `after` written so far. A live subscriber reads this way: the
        writer wakes it for whatever is appended later, so it never waits on a flush (a
        thousand subscribers queueing on the write lock would be served one per loop turn)."""
        owner = self.holds(session_id)
        if not owner:
            await self._sync(session_id, fresh)
        tail = self._tail.get(session_id)
        if tail and (tail[0].seq or 0) <= after + 1:
            # The tail is contiguous: the events after `after` are its last ones, reached from
            # its end (a deque indexes from the nearer end; readers mostly want the newest).
            start = after + 1 - (tail[0].seq or 0)
            events = [tail[i] for i in range(start, len(tail))]
        else:
            events = await self._select(session_id, after)
            if events and not owner and session_id not in self._tail:
                # Everything up to the log's end: later reads here extend it.
                self._synced[session_id] = self._clock.monotonic()
                for event in events[-TAIL_SIZE:]:
                    self._remember(event)
        return events[:limit] if limit is not None else events

    async def subscribe(
        self, session_id: str, after: int = 0, keepalive: float = 15.0
    ) -> AsyncIterator[Event | None]:
        """Replay everything after `after`, then tail live. Yields None as a keep-alive tick."""
        async for batch in self.batches(session_id, after, keepalive):
            if not batch:
                yield None
            for event in batch:
                yield event

    async def batches(
        self, session_id: str, after: int = 0, keepalive: float = 15.0
    ) -> AsyncIterator[list[Event]]:
        """`subscribe` in batches: each read's events at once (the replay, then what each
        wake-up made readable); an empty batch is a keep-alive tick."""
        quiet_since = self._clock.monotonic()
        fresh = True
        while True:
            waker = self._waker(session_id)
            if fresh:
                events = await self.read(session_id, after, fresh=True)
                fresh = False
            else:
                events = await self._written(session_id, after)
            if events:
                after = events[-1].seq or after
                quiet_since = self._clock.monotonic()
                yield events
                continue
            left = keepalive - (self._clock.monotonic() - quiet_since)
            self._due(session_id, waker, max(0.0, min(self.poll, left)))
            await waker.event.wait()
            if self._clock.monotonic() - quiet_since >= keepalive:
                quiet_since = self._clock.monotonic()
                yield []

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
        await asyncio.gather(*self._publishing, return_exceptions=True)


@dataclass
class _Waker:
    event: asyncio.Event = field(default_factory=asyncio.Event)
    due: float = 0.0  # when `timer` sets it anyway
    timer: asyncio.Future[None] | None = None

    def set(self) -> None:
        self.event.set()
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


def _rows(batch: list[Event]) -> list[dict[str, Any]]:
    return [
        {
            "session_id": e.session_id,
            "seq": e.seq,
            "type": e.type,
            "turn_id": e.turn_id,
            "payload": e.to_dict(),
        }
        for e in batch
    ]


def _insert_ignoring_taken(dialect: str) -> Any:
    """An insert that skips a seq already written: a replica that lost a session's lease
    mid-batch must not fail the rest of the batch (its successor's events stand)."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(EventRow).on_conflict_do_nothing(index_elements=["session_id", "seq"])
