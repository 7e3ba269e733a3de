"""Pre-started harnesses, attacked: a new session adopts one that has never run a turn, two
sessions racing for one get one each at most, one that died while idle is replaced, pooled
sandboxes share nothing, and nothing is left behind at shutdown or after a crash."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from karta.dataplane.harness.base import SessionSpec
from karta.dataplane.runtime.pipeline import REFILL_PAUSE
from karta.dataplane.runtime.workspace import POOLED, session_files
from karta.testing import FakeHarness
from karta.testing.fake_harness import FakeSession, Gone, Say
from tests.runtime.conftest import CALLER, GUARD, run_turn, runtime_on, texts

POOL = {"pool_min": 1, "pool_max": 2}


async def pool_filled(runtime: Any, size: int) -> None:
    runtime.clock.advance(REFILL_PAUSE)  # a refill waits this long after a take
    async with asyncio.timeout(GUARD):
        while runtime.pipeline.pool.size() < size:  # noqa: ASYNC110
            await asyncio.sleep(0)


def opened_for(fake: FakeHarness, session_id: str) -> list[SessionSpec]:
    return [spec for spec in fake.opened if spec.session_id == session_id]


async def test_a_new_session_adopts_a_prestarted_harness(tmp_path, fake, clock):
    async with runtime_on(tmp_path, fake, clock, **POOL) as runtime:
        await pool_filled(runtime, 1)
        pooled = fake.opened[0]
        assert fake.received == []  # started ahead of demand, no turn run
        assert pooled.pooled  # the harness may prepare its first turn meanwhile
        session, created = await runtime.create_session(CALLER, {})
        assert created and session.id == pooled.session_id
        assert runtime.pipeline.live.is_live(session.id)
        assert not (session_files(tmp_path, session.id).root / POOLED).exists()
        events = await run_turn(session, "hello")
        assert texts(events) == "hello"
        assert opened_for(fake, session.id) == [pooled]  # the turn started no process
        assert fake.received[0].harness_session_id == pooled.harness_session_id
        assert not pooled.resume


async def test_a_pooled_harness_calls_the_model_for_its_session_only_once_adopted(
    tmp_path, fake, clock
):
    async with runtime_on(tmp_path, fake, clock, **POOL) as runtime:
        await pool_filled(runtime, 1)
        grants = runtime.isolation.proxy._grants
        (grant,) = grants.values()
        assert not grant.bound and grant.organization_id is None
        session, _ = await runtime.create_session(CALLER, {})
        assert grant.session_id == session.id and grant.bound
        assert grant.organization_id == CALLER.organization_id


class HeldRefills(FakeHarness):
    """The first open goes through; later ones wait until the test lets them."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.refill = asyncio.Event()

    async def open(self, spec: SessionSpec) -> FakeSession:
        if self.opened:
            await self.refill.wait()
        return await super().open(spec)


async def test_two_sessions_racing_for_one_pooled_harness(tmp_path, clock):
    fake = HeldRefills(clock)
    async with runtime_on(tmp_path, fake, clock, pool_min=1, pool_max=1) as runtime:
        await pool_filled(runtime, 1)
        pooled = fake.opened[0].session_id
        (a, _), (b, _) = await asyncio.gather(
            runtime.create_session(CALLER, {}), runtime.create_session(CALLER, {})
        )
        assert [s.id for s in (a, b)].count(pooled) == 1
        fake.refill.set()
        await asyncio.gather(run_turn(a, "from a"), run_turn(b, "from b"))
        by_session = {r.session_id: r.harness_session_id for r in fake.received}
        assert by_session[a.id] != by_session[b.id]
        for session in (a, b):  # each turn ran in a harness opened for its own session
            assert len(opened_for(fake, session.id)) == 1


async def test_a_pooled_harness_that_died_while_idle_is_replaced(tmp_path, fake, clock):
    async with runtime_on(tmp_path, fake, clock, **POOL) as runtime:
        await pool_filled(runtime, 1)
        session, _ = await runtime.create_session(CALLER, {})
        fake.enqueue(Gone(), session=session.id)
        fake.enqueue(Say("fresh"), session=session.id)
        events = await run_turn(session, "hello")
        assert texts(events) == "fresh"
        pooled, fresh = opened_for(fake, session.id)
        assert session.id in fake.closed and pooled is not fresh and not fresh.resume


async def test_used_harnesses_never_go_back_to_the_pool(tmp_path, fake, clock):
    async with runtime_on(tmp_path, fake, clock, pool_min=1, pool_max=1) as runtime:
        await pool_filled(runtime, 1)
        first, _ = await runtime.create_session(CALLER, {})
        await run_turn(first, "secret of the first")
        await first.end()
        await pool_filled(runtime, 1)
        second, _ = await runtime.create_session(CALLER, {})
        assert second.id != first.id
        await run_turn(second, "hello")
        spec = opened_for(fake, second.id)[0]
        assert spec.harness_session_id != opened_for(fake, first.id)[0].harness_session_id
        transcript = await second.transcript()
        assert "secret" not in str(transcript)


async def test_pooled_sandboxes_share_nothing(tmp_path, fake, clock):
    async with runtime_on(tmp_path, fake, clock, pool_min=2, pool_max=2) as runtime:
        await pool_filled(runtime, 2)
        a, b = fake.opened[:2]
        assert a.session_id != b.session_id
        assert a.harness_session_id != b.harness_session_id
        assert not {a.workspace, a.state_dir} & {b.workspace, b.state_dir}
        assert not a.workspace.is_relative_to(b.workspace.parent)
        assert a.model_env["ANTHROPIC_API_KEY"] != b.model_env["ANTHROPIC_API_KEY"]
        (a.workspace / "planted.txt").write_text("from a")
        assert not (b.workspace / "planted.txt").exists()


async def test_shutdown_leaves_no_pooled_harness_and_a_crash_leaves_no_folder(
    tmp_path, fake, clock
):
    async with runtime_on(tmp_path, fake, clock, **POOL) as runtime:
        await pool_filled(runtime, 1)
        pooled = fake.opened[0].session_id
    assert pooled in fake.killed
    assert not session_files(tmp_path, pooled).root.exists()
    # A server that died with harnesses pooled left marked folders: the next one removes them.
    left = session_files(tmp_path, "sess_left")
    left.create_pooled(Path(__file__).parent)
    async with runtime_on(tmp_path, fake, clock):
        assert not left.root.exists()


async def test_the_pool_is_off_at_zero(runtime, fake):
    session, _ = await runtime.create_session(CALLER, {})
    await run_turn(session, "hello")
    assert [spec.session_id for spec in fake.opened] == [session.id]
    assert runtime.pipeline.pool.size() == 0
