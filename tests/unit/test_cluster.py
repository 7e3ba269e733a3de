"""Replica coordination against a real Redis: leases (claim, compare-and-extend, release,
expiry), session ownership between two replicas (forwarding target, takeover after the owner
dies), and event fan-out between two event logs on one database (every event, in order, once;
a lost wake-up or a dropped Redis connection delays a subscriber, never stalls it). Plus the
in-process coordinator the embedded mode runs on, through the same interface."""

from __future__ import annotations

import asyncio
import inspect
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis

from karta.core import db as store
from karta.core.events import Event
from karta.dataplane.cluster.coordinator import Coordinator, InProcess, Wake
from karta.dataplane.cluster.ownership import Owner, Ownership
from karta.dataplane.cluster.redis import RedisCoordinator
from karta.dataplane.eventlog import SqlEventLog
from karta.dataplane.store import MIGRATIONS
from karta.dataplane.store.models import SessionRow
from tests.cluster import drop_prefix, redis_or_skip

GUARD = 20.0  # a hang fails the test instead of stalling it; never a timing assertion


async def until(check: Any, accept: Any = bool) -> None:
    """Poll `check()` (a value or an awaitable) until `accept` takes it."""
    async with asyncio.timeout(GUARD):
        while True:
            value = check()
            if inspect.isawaitable(value):
                value = await value
            if accept(value):
                return
            await asyncio.sleep(0.05)


@pytest.fixture
def redis_url() -> str:
    return redis_or_skip()


@pytest.fixture
async def prefix(redis_url: str) -> AsyncIterator[str]:
    name = f"karta-test-{secrets.token_hex(4)}:"
    yield name
    drop_prefix(redis_url, name)


@pytest.fixture
async def coordinators(redis_url: str, prefix: str) -> AsyncIterator[list[RedisCoordinator]]:
    pair = [RedisCoordinator(redis_url, prefix) for _ in range(2)]
    yield pair
    for coordinator in pair:
        await coordinator.close()


@pytest.fixture(params=["redis", "in-process"])
async def coordinator(request, redis_url, prefix) -> AsyncIterator[Coordinator]:  # type: ignore[no-untyped-def]
    backend: Coordinator = (
        RedisCoordinator(redis_url, prefix) if request.param == "redis" else InProcess()
    )
    yield backend
    await backend.close()


async def test_a_lease_is_held_by_one_value_and_only_its_holder_moves_it(coordinator, prefix):
    key = f"{prefix}lease:s1"
    assert await coordinator.acquire(key, "a", 30)
    assert not await coordinator.acquire(key, "b", 30)
    assert await coordinator.holders([key, f"{prefix}lease:none"]) == ["a", None]
    assert await coordinator.extend({key: "a"}, 30) == set()
    assert await coordinator.extend({key: "b"}, 30) == {key}, "b does not hold it"
    await coordinator.release(key, "b")
    assert await coordinator.holders([key]) == ["a"], "b cannot release it"
    await coordinator.release(key, "a")
    assert await coordinator.holders([key]) == [None]
    assert await coordinator.acquire(key, "b", 30)


async def test_a_redis_lease_expires_unless_renewed(coordinators, prefix):
    first, _ = coordinators
    key = f"{prefix}lease:s1"
    assert await first.acquire(key, "a", 0.2)
    await until(lambda: first.holders([key]), lambda holders: holders == [None])
    assert await first.extend({key: "a"}, 30) == {key}, "an expired lease is lost"


class Hooks:
    def __init__(self) -> None:
        self.adopted: list[str] = []
        self.abandoned: list[str] = []
        self.live: list[str] = []

    async def adopt(self, session_id: str) -> None:
        self.adopted.append(session_id)

    async def abandon(self, session_id: str) -> None:
        self.abandoned.append(session_id)

    def busy(self, session_id: str) -> bool:
        return False

    async def orphans(self) -> list[str]:
        return list(self.live)


def ownership(coordinator: Coordinator, prefix: str, replica: str) -> Ownership:
    return Ownership(
        coordinator,
        replica=replica,
        url=f"http://{replica}",
        prefix=prefix,
        ttl=0.6,
        idle=600,
    )


async def test_one_replica_owns_a_session_and_another_takes_it_when_it_dies(coordinators, prefix):
    a, b = ownership(coordinators[0], prefix, "a"), ownership(coordinators[1], prefix, "b")
    hooks_a, hooks_b = Hooks(), Hooks()
    await a.start(hooks_a)
    await b.start(hooks_b)
    try:
        assert await a.owner("s1") is None and a.holds("s1")
        assert hooks_a.adopted == ["s1"]
        owner = await b.owner("s1")
        assert isinstance(owner, Owner) and owner.url == "http://a", "b forwards to a"
        # a dies: it stops renewing (its tasks end with it), and never releases.
        for task in a._tasks:
            task.cancel()
        hooks_b.live = ["s1"]  # the database says s1 has a live turn: b's reaper claims it
        await until(lambda: b.holds("s1"))
        assert hooks_b.adopted == ["s1"]
        assert await b.owner("s1") is None
    finally:
        await b.stop()
    assert hooks_b.abandoned == ["s1"], "a stopping replica gives its sessions up"


async def test_one_server_adopts_the_turns_a_crash_left_as_it_starts_and_never_later():
    # Later, a live turn nobody holds is not an orphan of this server: the database has another
    # server without a shared coordinator (a misconfiguration), whose turn it must not abort.
    server, hooks = ownership(InProcess(), "", "one"), Hooks()
    hooks.live = ["crashed"]
    await server.start(hooks)
    try:
        assert hooks.adopted == ["crashed"]
        hooks.live = ["crashed", "elsewhere"]
        await asyncio.sleep(server.ttl * 2)  # the renewals run; the reaper would have, twice
        assert hooks.adopted == ["crashed"] and not server.holds("elsewhere")
    finally:
        await server.stop()


async def test_a_restarted_replica_reclaims_the_lease_of_its_previous_life(coordinators, prefix):
    before = ownership(coordinators[0], prefix, "a")
    await before.start(Hooks())
    assert await before.owner("s1") is None
    for task in before._tasks:
        task.cancel()  # killed: the lease is still there, with the old token
    after, hooks = ownership(coordinators[1], prefix, "a"), Hooks()
    await after.start(hooks)
    try:
        assert await after.owner("s1") is None, "not forwarded to itself"
        assert hooks.adopted == ["s1"]
    finally:
        await after.stop()


async def test_a_lost_lease_is_abandoned(coordinators, prefix, redis_url):
    a, hooks = ownership(coordinators[0], prefix, "a"), Hooks()
    await a.start(hooks)
    try:
        assert await a.owner("s1") is None
        redis.Redis.from_url(redis_url).delete(f"{prefix}lease:s1")  # e.g. a Redis failover
        await until(lambda: not a.holds("s1"))
        assert hooks.abandoned == ["s1"]
    finally:
        await a.stop()


# --- fan-out -------------------------------------------------------------------------------


@pytest.fixture
async def sessions(tmp_path: Path):  # type: ignore[no-untyped-def]
    engine = store.create_engine(f"sqlite:///{tmp_path / 'k.db'}", in_place=True)
    await store.migrate(engine, MIGRATIONS)
    maker = store.sessionmaker(engine)
    async with maker() as db, db.begin():
        db.add(SessionRow(id="s1", app_name="t"))
    yield maker
    await engine.dispose()


async def two_logs(sessions, coordinators, poll: float) -> tuple[SqlEventLog, SqlEventLog]:  # type: ignore[no-untyped-def]
    """Replica a owns s1 and writes; replica b only reads."""
    writer = SqlEventLog(sessions, coordinators[0], replica="a", poll=poll)
    reader = SqlEventLog(sessions, coordinators[1], replica="b", holds=lambda _: False, poll=poll)
    await coordinators[0].start(writer.woken, writer.resync)
    return writer, reader


async def follow(log: SqlEventLog, count: int, after: int = 0) -> list[int]:
    seen: list[int] = []
    async with asyncio.timeout(GUARD):
        async for event in log.subscribe("s1", after, keepalive=60):
            if event is not None:
                seen.append(event.seq or 0)
                if len(seen) == count:
                    return seen
    raise AssertionError("unreachable")


async def test_a_subscriber_on_another_replica_gets_every_event_in_order(sessions, coordinators):
    writer, reader = await two_logs(sessions, coordinators, poll=60)  # wake-ups, not polling
    await coordinators[1].start(reader.woken, reader.resync)
    await writer.append("s1", Event("text", {"i": 0}))
    tails = [asyncio.create_task(follow(reader, 40)) for _ in range(3)]
    resumed = asyncio.create_task(follow(reader, 20, after=20))  # Last-Event-ID: 20
    await asyncio.sleep(0.2)
    for i in range(1, 40):
        await writer.append("s1", Event("done" if i % 10 == 0 else "text", {"i": i}))
    assert [await t for t in tails] == [list(range(1, 41))] * 3
    assert await resumed == list(range(21, 41))


async def test_a_wake_up_during_a_read_already_under_way_is_not_lost(sessions, coordinators):
    writer, reader = await two_logs(sessions, coordinators, poll=60)  # wake-ups, not polling
    await coordinators[1].start(reader.woken, reader.resync)
    await writer.append("s1", Event("text"))
    tail = asyncio.create_task(follow(reader, 2))
    await asyncio.sleep(0.2)  # the subscriber has read event 1 and waits
    select, gate, stalled = reader._select, asyncio.Event(), asyncio.Event()

    async def stale_select(session_id: str, after: int) -> list[Event]:
        found = await select(session_id, after)  # looks before event 2 is written ...
        if not stalled.is_set():
            stalled.set()
            await gate.wait()  # ... and answers after its wake-up came
        return found

    reader._select = stale_select  # type: ignore[method-assign]
    reader.woken(Wake("a", "s1", 1))  # a read starts
    await asyncio.wait_for(stalled.wait(), GUARD)
    await writer.append("s1", Event("done"))
    await asyncio.sleep(0.2)  # its wake-up reaches b while the first read is still out
    gate.set()
    assert await tail == [1, 2]


async def test_without_wake_ups_a_subscriber_still_catches_up(sessions, coordinators):
    writer, reader = await two_logs(sessions, coordinators, poll=0.2)  # b never subscribed
    tail = asyncio.create_task(follow(reader, 5))
    await asyncio.sleep(0.1)
    for _ in range(5):
        await writer.append("s1", Event("text"))
    assert await tail == [1, 2, 3, 4, 5]


async def test_a_dropped_redis_connection_resyncs_its_subscribers(
    sessions, coordinators, redis_url
):
    writer, reader = await two_logs(sessions, coordinators, poll=60)
    resyncs = asyncio.Event()

    def resync() -> None:
        reader.resync()
        resyncs.set()

    await coordinators[1].start(reader.woken, resync)
    await asyncio.wait_for(resyncs.wait(), GUARD)
    tail = asyncio.create_task(follow(reader, 3))
    await asyncio.sleep(0.1)
    await writer.append("s1", Event("text"))
    resyncs.clear()
    admin = redis.Redis.from_url(redis_url, decode_responses=True)
    for client in admin.client_list(_type="pubsub"):
        if client["name"] == coordinators[1].channel:
            admin.client_kill_filter(_id=client["id"])  # b's listener drops
    await writer.append("s1", Event("text"))  # probably published while b was away
    await writer.append("s1", Event("done"))
    await asyncio.wait_for(resyncs.wait(), GUARD)
    assert await tail == [1, 2, 3]


async def test_a_wake_up_brings_its_events_so_other_replicas_read_no_database(
    sessions, coordinators
):
    writer, reader = await two_logs(sessions, coordinators, poll=60)  # wake-ups, not polling
    await coordinators[1].start(reader.woken, reader.resync)
    await writer.append("s1", Event("text", {"i": 0}))
    tail = asyncio.create_task(follow(reader, 6))
    await until(lambda: reader._tail.get("s1"))  # b has read event 1 from the database
    select, reads = reader._select, []

    async def counted(session_id: str, after: int) -> list[Event]:
        reads.append(after)
        return await select(session_id, after)

    reader._select = counted  # type: ignore[method-assign]
    for i in range(1, 6):
        await writer.append("s1", Event("text", {"i": i}))
    assert await tail == [1, 2, 3, 4, 5, 6]
    assert reads == [], "every event came with its wake-up"
    assert [e.data for e in await reader.read("s1")] == [{"i": i} for i in range(6)]


async def test_a_wake_up_after_a_lost_one_sends_its_reader_to_the_database(sessions, coordinators):
    writer, reader = await two_logs(sessions, coordinators, poll=60)
    await writer.append("s1", Event("text"))
    tail = asyncio.create_task(follow(reader, 4))
    await until(lambda: reader._tail.get("s1"))
    await writer.append("s1", Event("text"))  # b is not listening yet: these wake-ups are lost
    await writer.append("s1", Event("text"))
    await coordinators[1].start(reader.woken, lambda: None)  # and no resync makes up for them
    await until(
        lambda: coordinators[0]._redis.pubsub_numsub(coordinators[0].channel),
        lambda n: n[0][1] == 2,
    )
    await writer.append("s1", Event("done"))  # its wake-up carries event 4, after a gap
    assert await tail == [1, 2, 3, 4]


def test_a_wake_up_carries_small_batches_and_reads_old_replicas_wake_ups():
    events = [Event("text", {"t": "hi"}, session_id="s1", seq=n) for n in (7, 8)]
    wake = Wake.decode(Wake.carrying("a", "s1", events).encoded)
    assert (wake.seq, [e["data"] for e in wake.events]) == (8, [{"t": "hi"}] * 2)
    large = [Event("text", {"t": "x" * 40_000}, session_id="s1", seq=9)]
    assert Wake.carrying("a", "s1", large).events == (), "too large: readers go to the database"
    assert Wake.decode('["a", "s1", 3]') == Wake("a", "s1", 3)
