"""`/readyz` on the data plane, in-process against the real control plane: ready only while the
database, the control plane and the harness binary all are, naming what is not, and never a
call to the control plane per poll."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from karta.core import db as store
from karta.core import internal_api as api
from karta.dataplane.control.readiness import ControlPlaneProbe
from karta.dataplane.harness import claude_code
from karta.testing import FakeClock
from tests.unit.control_plane_double import ControlPlaneDouble, data_plane, key

READY = {"database": "ok", "coordinator": "ok", "control_plane": "ok", "harness": "ok"}


def readiness(response) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """The answer without its `sandbox` line (where harnesses run: see tests/sandbox) and its
    harness counts (tests/runtime/test_pool.py)."""
    body = dict(response.json())
    assert isinstance(body.pop("sandbox"), str)
    assert body.pop("harnesses").keys() == {"live", "pooled", "starting", "queued"}
    return body


def degraded(**failing: str) -> dict[str, object]:
    return {"status": "degraded", "checks": {**READY, **failing}}


async def test_ready_when_everything_answers(control, clock, tmp_path):
    async with data_plane(control, tmp_path, clock) as (_, plane):
        response = await plane.get("/readyz")
    assert response.status_code == 200
    assert readiness(response) == {"status": "ready", "checks": READY}
    assert control.faults.calls == [api.WHOAMI]


async def test_an_unreachable_control_plane_is_degraded_until_it_answers(control, clock, tmp_path):
    async with data_plane(control, tmp_path, clock) as (_, plane):
        control.faults.down = True
        for _ in range(10):
            response = await plane.get("/readyz")
            assert response.status_code == 503
            assert readiness(response) == degraded(control_plane="unreachable")
        assert control.faults.calls == [api.WHOAMI], "one probe however often it is polled"

        control.faults.down = False
        assert (await plane.get("/readyz")).status_code == 503, "the answer holds a while"
        clock.advance(2)
        assert readiness(await plane.get("/readyz")) == {"status": "ready", "checks": READY}
        assert control.faults.calls == [api.WHOAMI] * 2


async def test_an_open_breaker_answers_without_asking(control, clock, tmp_path):
    async with data_plane(control, tmp_path, clock) as (_, plane):
        control.faults.down = True
        for _ in range(3):  # the data plane's breaker opens after three failed calls
            refused = await plane.post("/v1/sessions", json={}, headers=bearer(key(1)))
            assert refused.status_code == 503
        response = await plane.get("/readyz")
        assert readiness(response) == degraded(control_plane="unreachable")
        assert api.WHOAMI not in control.faults.calls, "an open breaker makes no call"

        control.faults.down = False
        clock.advance(2)  # the breaker's window
        assert (await plane.get("/readyz")).status_code == 200


@pytest.mark.parametrize("status", [500, 503])
async def test_a_failing_control_plane_is_degraded(control, clock, tmp_path, status):
    async with data_plane(control, tmp_path, clock) as (_, plane):
        control.faults.status = status
        response = await plane.get("/readyz")
    assert response.status_code == 503
    assert readiness(response) == degraded(control_plane="error")


async def test_concurrent_polls_share_one_probe(control: ControlPlaneDouble, clock: FakeClock):
    probe = ControlPlaneProbe(control.client(clock), clock=clock)
    control.faults.hold()
    polls = [asyncio.create_task(probe.state()) for _ in range(5)]
    await control.faults.wait_held()
    await asyncio.sleep(0.05)  # time for any other poll to reach the control plane as well
    control.faults.release()
    assert await asyncio.gather(*polls) == ["ok"] * 5
    assert control.faults.calls == [api.WHOAMI]


async def test_a_refused_service_token_reads_as_unauthorized(
    control: ControlPlaneDouble, clock: FakeClock
) -> None:
    probe = ControlPlaneProbe(control.client(clock, token="not-the-token"), clock=clock)
    assert await probe.state() == "unauthorized"
    assert await control.client(clock).probe() is None


async def test_a_database_that_does_not_answer_is_degraded(control, clock, tmp_path, monkeypatch):
    (tmp_path / "file").write_text("a file, so no database can be created under it")
    engine = store.create_engine(f"sqlite:///{tmp_path / 'file' / 'karta.db'}")
    async with data_plane(control, tmp_path / "data", clock) as (app, plane):
        monkeypatch.setattr(app.state.runtime.repo, "db", store.sessionmaker(engine))
        response = await plane.get("/readyz")
        monkeypatch.undo()
    await engine.dispose()
    assert response.status_code == 503
    assert readiness(response) == degraded(database="unavailable")


async def test_a_missing_harness_binary_is_degraded(control, clock, tmp_path, monkeypatch):
    monkeypatch.setattr(claude_code, "BUNDLED_CLI", tmp_path / "no-such-claude")
    async with data_plane(control, tmp_path / "data", clock) as (_, plane):
        response = await plane.get("/readyz")
    assert response.status_code == 503
    assert readiness(response) == degraded(harness="missing")


async def test_open_mode_needs_no_control_plane(control, clock, tmp_path):
    control.faults.down = True
    async with data_plane(control, tmp_path, clock, open_auth=True) as (_, plane):
        response = await plane.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {**READY, "control_plane": "disabled"}
    assert control.faults.calls == []


async def test_liveness_ignores_the_control_plane(control, clock, tmp_path: Path):
    control.faults.down = True
    async with data_plane(control, tmp_path, clock) as (_, plane):
        response = await plane.get("/healthz")
    assert response.status_code == 200 and response.json()["status"] == "ok"


def bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}
