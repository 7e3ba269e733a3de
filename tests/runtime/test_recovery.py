"""No turn survives a restart: a turn a killed server left live is closed when the next one
starts (`turn_aborted`, then `done` failed), its approval aborted, and the session goes on. A
session is not given up while its ended turn is written down, and a turn settled twice in the
same state (its new owner found it live a moment before) keeps that state."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from karta.core import events as ev
from karta.core.errors import InputNotPending
from karta.core.events import Event
from karta.core.turn_fold import TurnState
from karta.dataplane.runtime.lifecycle import Decision, IllegalTransition
from karta.dataplane.runtime.turns import TurnRequest
from karta.testing.fake_harness import Ask, Say, Step, Wait
from tests.runtime.conftest import (
    CALLER,
    GUARD,
    ended_turn,
    is_paused,
    run_turn,
    runtime_on,
    texts,
    turn_row,
    until,
)

PAUSED = "awaiting_input"


def talking(event: Event) -> bool:
    return event.type == ev.TEXT


def killed_copy(home: Path, to: Path) -> Path:
    """The home a server killed right now would leave behind: what its database committed (a
    consistent snapshot through SQLite's backup API) and its session folders. The running
    server is left alone; its own orderly stop cannot touch the copy."""
    to.mkdir()
    with (
        closing(sqlite3.connect(home / "karta.db")) as live,
        closing(sqlite3.connect(to / "karta.db")) as copy,
    ):
        live.backup(copy)
    shutil.copytree(home / "sessions", to / "sessions")
    return to


def status_in(home: Path, table: str, key: str, value: str) -> str:
    with closing(sqlite3.connect(home / "karta.db")) as db:
        (status,) = db.execute(f"SELECT status FROM {table} WHERE {key} = ?", (value,)).fetchone()
    return str(status)


@pytest.mark.parametrize(
    ("step", "left"),
    [(Ask("Write", {"file_path": "a.md"}), PAUSED), (Wait(), "running")],
    ids=[PAUSED, "running"],
)
async def test_a_turn_cut_off_by_a_kill_is_closed_at_the_next_start(
    tmp_path, fake, clock, step: Step, left: str
):
    async with runtime_on(tmp_path / "before", fake, clock) as first:
        session, _ = await first.create_session(CALLER, {})
        fake.enqueue(Say("Working on it."), step)
        turn = await session.send(TurnRequest("do it"))
        seen = await until(session, turn.after, is_paused(turn) if left == PAUSED else talking)
        home = killed_copy(tmp_path / "before", tmp_path / "after")
    request_id = seen[-1].data.get("request_id")
    assert status_in(home, "turns", "id", turn.turn_id) == left
    if request_id is not None:
        assert status_in(home, "approvals", "request_id", request_id) == "pending"

    async with runtime_on(home, fake, clock) as second:
        session = await second.session(CALLER, session.id)
        closed = [e for e in await session.read() if e.turn_id == turn.turn_id]
        assert [e.type for e in closed[-2:]] == [ev.ERROR, ev.DONE]
        assert closed[-2].data["code"] == "turn_aborted"
        assert closed[-1].data["status"] == "failed"
        assert (await turn_row(second, turn.turn_id)).status == "failed"
        view = await session.view()
        assert not view.turn_running and view.pending_input is None
        if request_id is not None:
            assert status_in(home, "approvals", "request_id", request_id) == "aborted"
            with pytest.raises(InputNotPending):
                await session.decide(request_id, Decision.APPROVE_ONCE)

        fake.enqueue(Say("Back again."))
        assert texts(await run_turn(session, "still there?")) == "Back again."
        assert fake.opened[-1].resume  # the conversation the killed server had, resumed
        assert fake.opened[-1].harness_session_id == fake.opened[0].harness_session_id


async def test_a_turn_stopped_between_its_done_and_its_row_keeps_its_one_done(
    tmp_path, fake, clock
):
    async with runtime_on(tmp_path, fake, clock) as first:
        session, _ = await first.create_session(CALLER, {})
        fake.enqueue(Say("All done."), usage={"input_tokens": 3, "output_tokens": 4})
        events = await run_turn(session, "go")
        turn_id = events[-1].turn_id
    # What a kill right after the `done` leaves: the log has it, the row still says running.
    with closing(sqlite3.connect(tmp_path / "karta.db")) as db, db:
        db.execute("UPDATE turns SET status = 'running', usage = NULL WHERE id = ?", (turn_id,))

    async with runtime_on(tmp_path, fake, clock) as second:
        session = await second.session(CALLER, session.id)
        logged = [e.type for e in await session.read() if e.turn_id == turn_id]
        assert logged.count(ev.DONE) == 1 and ev.ERROR not in logged
        row = await turn_row(second, turn_id)
        assert row.status == "completed"
        assert row.usage is not None and row.usage["output_tokens"] == 4


async def test_an_ended_turn_is_written_down_before_its_idle_session_is_given_up(
    tmp_path, fake, clock, monkeypatch
):
    # Were the session given up between the turn's `done` and its row, the next message would
    # claim it anew and settle the turn a second time, racing the first.
    async with runtime_on(tmp_path, fake, clock, idle_timeout=60) as runtime:
        session, _ = await runtime.create_session(CALLER, {})
        written_down, finish_turn = asyncio.Event(), runtime.repo.finish_turn

        async def slow_finish_turn(*args: Any) -> None:
            await written_down.wait()
            await finish_turn(*args)

        monkeypatch.setattr(runtime.repo, "finish_turn", slow_finish_turn)
        turn_id = (await run_turn(session, "hello"))[-1].turn_id
        ownership = runtime.ownership
        clock.advance(60 + ownership.ttl)  # idle, and a renewal is due
        try:
            for _ in range(50):
                await asyncio.sleep(0)
            assert ownership.holds(session.id), "kept while its ended turn is written down"
        finally:
            written_down.set()
        assert (await ended_turn(runtime, turn_id)).status == "completed"
        async with asyncio.timeout(GUARD):
            while ownership.holds(session.id):
                clock.advance(ownership.ttl)
                await asyncio.sleep(0)
        events = await run_turn(session, "again")  # claimed anew: nothing left to settle
        assert events[-1].data["status"] == "completed"


async def test_a_turn_settled_twice_in_the_same_state_keeps_it(runtime, fake):
    session, _ = await runtime.create_session(CALLER, {})
    fake.enqueue(Say("Done."), usage={"input_tokens": 3, "output_tokens": 4})
    turn_id = (await run_turn(session, "go"))[-1].turn_id
    row = await ended_turn(runtime, turn_id)
    await runtime.repo.finish_turn(session.id, row.id, TurnState.COMPLETED, row.usage, None)
    assert (await turn_row(runtime, turn_id)).status == "completed"
    with pytest.raises(IllegalTransition):
        await runtime.repo.finish_turn(session.id, row.id, TurnState.FAILED, row.usage, None)
