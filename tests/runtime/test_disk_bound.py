"""A turn may not grow its session's folder past the disk limit: the turn that does is ended
with `disk_quota_exceeded`; a turn that starts over the limit may run (to clean up) but not add
to it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from karta.core import events as ev
from karta.dataplane.runtime.disk import folder_bytes
from karta.dataplane.runtime.turns import TurnRequest
from karta.dataplane.runtime.workspace import session_files
from karta.testing import FakeClock
from karta.testing.fake_harness import Say, Wait
from tests.runtime.conftest import CALLER, GUARD, ended_turn, is_done, of_type, run_turn, until
from tests.runtime.conftest import runtime_on as runtime_with

LIMIT = 1 << 20
MIB = b"x" * (1 << 20)


async def grow_until_done(clock: FakeClock, workspace: Path, names: list[str], done) -> None:  # type: ignore[no-untyped-def]
    """Write a MiB file per name, moving the clock past a measurement after each, until the
    turn is over. (The turn's first measurement may come after the first file: the second
    grows the folder past what it saw, either way.)"""
    async with asyncio.timeout(GUARD):
        for name in names:
            (workspace / name).write_bytes(MIB)
            clock.advance(2.0)
            await asyncio.sleep(0.05)
        while not done.done():
            clock.advance(2.0)
            await asyncio.sleep(0.01)


async def test_a_turn_that_fills_the_disk_is_ended_and_the_next_may_clean_up(tmp_path, fake, clock):
    async with runtime_with(
        tmp_path, fake, clock, session_disk_bytes=LIMIT, disk_check_interval=2.0
    ) as runtime:
        session, _ = await runtime.create_session(CALLER, {})
        workspace = session_files(tmp_path, session.id).workspace
        fake.enqueue(Say("Writing."), Wait())
        turn = await session.send(TurnRequest("fill it"))
        await until(session, turn.after, lambda e: e.type == ev.TEXT)
        events = asyncio.ensure_future(until(session, turn.after, is_done(turn)))
        await grow_until_done(clock, workspace, ["a.bin", "b.bin"], events)
        [error] = of_type(events.result(), ev.ERROR)
        assert error.data["code"] == "disk_quota_exceeded"
        assert error.data["limit_bytes"] == LIMIT and error.data["used_bytes"] > LIMIT
        assert events.result()[-1].data["status"] == "failed"
        assert (await ended_turn(runtime, turn.turn_id)).status == "failed"

        # Still over the limit: a turn that does not add to it runs to the end.
        fake.enqueue(Say("Cleaning up."))
        cleanup = await run_turn(session, "clean up")
        assert cleanup[-1].data["status"] == "completed"
        (workspace / "a.bin").unlink()
        assert folder_bytes(workspace) > LIMIT

        # One that adds to it is ended again.
        fake.enqueue(Say("More."), Wait())
        turn = await session.send(TurnRequest("more"))
        await until(session, turn.after, lambda e: e.type == ev.TEXT)
        events = asyncio.ensure_future(until(session, turn.after, is_done(turn)))
        await grow_until_done(clock, workspace, ["c.bin", "d.bin"], events)
        assert [e.data["code"] for e in of_type(events.result(), ev.ERROR)] == [
            "disk_quota_exceeded"
        ]


def test_the_measure_counts_allocated_blocks_and_does_not_follow_links(tmp_path):
    (tmp_path / "dense").write_bytes(MIB)
    with (tmp_path / "sparse").open("wb") as sparse:
        sparse.truncate(1 << 30)  # a GiB that occupies nothing
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "link").symlink_to("/usr")
    used = folder_bytes(tmp_path)
    assert LIMIT <= used < 2 * LIMIT
    assert folder_bytes(tmp_path / "missing") == 0
