"""A runtime on SQLite in `tmp_path`, its harness a `FakeHarness` and its time a `FakeClock`:
the turn pipeline end to end, in process, in milliseconds."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from karta.app import load_app
from karta.core import events as ev
from karta.core.events import Event
from karta.dataplane.principal import Principal
from karta.dataplane.runtime.factory import open_runtime
from karta.dataplane.runtime.handle import SessionHandle
from karta.dataplane.runtime.lifecycle import LIVE_TURN_STATES
from karta.dataplane.runtime.service import Runtime
from karta.dataplane.runtime.turns import TurnHandle, TurnRequest
from karta.dataplane.settings import Settings
from karta.dataplane.store.models import TurnRow
from karta.testing import FakeClock, FakeHarness
from tests.conftest import SUPPORT_BOT

CALLER = Principal(kind="api_key", organization_id=1)
# How long a wait may take before the test fails instead of hanging: a guard, never a timing
# assertion (every wait here ends in milliseconds).
GUARD = 10.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fake(clock: FakeClock) -> FakeHarness:
    return FakeHarness(clock)


@asynccontextmanager
async def runtime_on(
    home: Path, fake: FakeHarness, clock: FakeClock, **settings: Any
) -> AsyncIterator[Runtime]:
    """A runtime serving the support bot from `home`, every harness kind played by `fake`."""
    config = Settings(home=home, open_auth=False, **settings)
    async with open_runtime(
        load_app(SUPPORT_BOT), config, {}, harnesses=lambda kind: fake, clock=clock
    ) as runtime:
        yield runtime


@pytest.fixture
async def runtime(tmp_path: Path, fake: FakeHarness, clock: FakeClock) -> AsyncIterator[Runtime]:
    async with runtime_on(tmp_path, fake, clock) as running:
        yield running


@pytest.fixture
async def session(runtime: Runtime) -> SessionHandle:
    handle, _ = await runtime.create_session(CALLER, {})
    return handle


async def until(handle: SessionHandle, after: int, stop: Callable[[Event], bool]) -> list[Event]:
    """The session's events after `after`, up to and including the first `stop` accepts."""
    out: list[Event] = []
    async with asyncio.timeout(GUARD):
        async for event in handle.subscribe(after):
            if event is None:
                continue  # a keep-alive tick
            out.append(event)
            if stop(event):
                return out
    raise AssertionError("unreachable: the subscription never ends by itself")


def is_done(turn: TurnHandle) -> Callable[[Event], bool]:
    return lambda event: event.type == ev.DONE and event.turn_id == turn.turn_id


def is_paused(turn: TurnHandle) -> Callable[[Event], bool]:
    return lambda event: event.type == ev.INPUT_REQUIRED and event.turn_id == turn.turn_id


async def run_turn(handle: SessionHandle, text: str, **request: Any) -> list[Event]:
    """Send a message and return the turn's events, through its `done`."""
    turn = await handle.send(TurnRequest(text, **request))
    return await until(handle, turn.after, is_done(turn))


async def turn_row(runtime: Runtime, turn_id: str | None) -> TurnRow:
    """The turn's row (`turn_id` as a `TurnHandle` or one of the turn's events has it)."""
    assert turn_id is not None
    async with runtime.db() as db:
        row = await db.get(TurnRow, turn_id)
    assert row is not None, f"no turn {turn_id}"
    return row


async def ended_turn(runtime: Runtime, turn_id: str | None) -> TurnRow:
    """The turn's row once the runtime has stored its end, which it does just after the turn's
    `done` (clients hear the end first)."""
    async with asyncio.timeout(GUARD):
        # Nothing announces that write (no event follows `done`), so the test polls for it.
        while (row := await turn_row(runtime, turn_id)).status in LIVE_TURN_STATES:  # noqa: ASYNC110
            await asyncio.sleep(0)
    return row


def texts(events: list[Event]) -> str:
    return "".join(e.part.get("text", "") for e in events if e.type == ev.TEXT)


def of_type(events: list[Event], kind: str) -> list[Event]:
    return [e for e in events if e.type == kind]
