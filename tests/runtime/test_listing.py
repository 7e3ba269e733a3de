"""Listing sessions: by status, by whether a turn holds them, by agent, by metadata, in pages."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from karta.core.errors import InvalidCursor
from karta.dataplane.runtime.queries import SessionFilter
from karta.dataplane.runtime.service import Runtime
from karta.dataplane.runtime.turns import TurnRequest
from karta.testing import FakeClock
from karta.testing.fake_harness import Wait
from tests.runtime.conftest import CALLER, ended_turn, is_done, run_turn, until

EVERYTHING = SessionFilter(organization_id=None)


async def listed(runtime: Runtime, **where: Any) -> list[str]:
    handles, _ = await runtime.list_sessions(CALLER, SessionFilter(None, **where), 50)
    return [h.id for h in handles]


async def test_sessions_are_listed_by_status_activity_agent_and_metadata(
    runtime, fake, clock: FakeClock
):
    sessions = []
    for metadata in ({"team": "red"}, {"team": "blue"}, {"team": "red", "tier": "gold"}, {}):
        handle, _ = await runtime.create_session(CALLER, metadata)
        sessions.append(handle)
        clock.advance(1)  # distinct creation times: newest first is a known order
    red, blue, gold, plain = sessions

    await plain.end()
    events = await run_turn(gold, "my invoice", agent="billing")
    await ended_turn(runtime, events[-1].turn_id)
    release = asyncio.Event()
    fake.enqueue(Wait(until=release), session=blue.id)
    busy = await blue.send(TurnRequest("slow"))

    assert await listed(runtime) == [plain.id, gold.id, blue.id, red.id]
    assert await listed(runtime, status="ended") == [plain.id]
    assert await listed(runtime, status="active") == [gold.id, blue.id, red.id]
    assert await listed(runtime, active=True) == [blue.id]
    assert await listed(runtime, active=False) == [plain.id, gold.id, red.id]
    assert await listed(runtime, agent="billing") == [gold.id]
    assert await listed(runtime, agent="triage") == [plain.id, blue.id, red.id]
    assert await listed(runtime, metadata=(("team", "red"),)) == [gold.id, red.id]
    assert await listed(runtime, metadata=(("team", "red"), ("tier", "gold"))) == [gold.id]
    assert await listed(runtime, metadata=(("team", "green"),)) == []

    release.set()
    await until(blue, busy.after, is_done(busy))
    await ended_turn(runtime, busy.turn_id)
    assert await listed(runtime, active=True) == []


async def test_sessions_are_listed_in_pages_after_a_cursor(runtime, clock: FakeClock):
    created = []
    for _ in range(5):
        handle, _ = await runtime.create_session(CALLER, {})
        created.append(handle.id)
        clock.advance(1)
    newest_first = created[::-1]

    pages, after, more = [], None, True
    while more:
        handles, more = await runtime.list_sessions(CALLER, EVERYTHING, 2, after)
        pages.append([h.id for h in handles])
        after = handles[-1].id
    assert pages == [newest_first[0:2], newest_first[2:4], newest_first[4:]]

    with pytest.raises(InvalidCursor):
        await runtime.list_sessions(CALLER, EVERYTHING, 2, "sess_missing")


async def test_sessions_created_in_the_same_instant_page_without_gaps_or_repeats(runtime):
    # The fake clock stands still: every row has the same created_at, the id breaks the tie.
    created = {(await runtime.create_session(CALLER, {}))[0].id for _ in range(5)}
    seen: list[str] = []
    after, more = None, True
    while more:
        handles, more = await runtime.list_sessions(CALLER, EVERYTHING, 2, after)
        seen += [h.id for h in handles]
        after = seen[-1]
    assert sorted(seen) == sorted(created) and len(seen) == 5
