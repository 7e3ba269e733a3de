"""`AsyncKarta` against the same real server: the twin of every main path of `test_sync.py`."""

from __future__ import annotations

import pytest

from karta.client import (
    AsyncKarta,
    AuthenticationError,
    NoTurnRunningError,
    SessionNotFoundError,
)
from karta.client.events import DoneEvent, InputRequiredEvent, TextEvent, ToolUseEvent
from karta.testing.fake_harness import Ask, Say, UseTool, Wait
from tests.sdk.conftest import FakeServer


async def test_sessions_and_pages(akarta: AsyncKarta):
    made = [await akarta.sessions.create(metadata={"suite": "async"}) for _ in range(3)]
    assert (await akarta.sessions.get(made[0].id)).id == made[0].id
    page = await akarta.sessions.list(limit=2, metadata={"suite": "async"})
    assert len(page.data) == 2 and page.has_more
    assert [s.id async for s in page] == [s.id for s in reversed(made)]
    await akarta.sessions.delete(made[0].id)
    with pytest.raises(SessionNotFoundError):
        await akarta.sessions.get("sess_nope")


async def test_a_stream_with_an_approval_and_its_final_message(
    akarta: AsyncKarta, served: FakeServer
):
    session = await akarta.sessions.create()
    served.fake.enqueue(
        UseTool("Read", {"file_path": "a"}, output="x"),
        Ask("Bash", {"command": "ls"}, output="a.txt"),
        Say("all done"),
        session=session.id,
    )
    seen = []
    async with akarta.sessions.messages.stream(session.id, "go") as stream:
        async for event in stream:
            seen.append(event)
            if isinstance(event, InputRequiredEvent):
                await akarta.sessions.inputs.decide(session.id, event.request_id, "approve_session")
    assert isinstance(seen[-1], DoneEvent)
    assert sum(isinstance(e, ToolUseEvent) for e in seen) == 4
    assert await stream.get_final_text() == "all done"
    assert (await stream.get_final_message()).text == "all done"
    assert (await akarta.sessions.get(session.id)).permission_mode == "approve_session"


async def test_text_stream_interrupt_and_transcript(akarta: AsyncKarta, served: FakeServer):
    session = await akarta.sessions.create()
    served.fake.enqueue(Say("half", chunk=2), Wait(), session=session.id)
    stream = akarta.sessions.messages.stream(session.id, "slow")
    async for event in stream:
        if isinstance(event, TextEvent) and event.text == "lf":
            await akarta.sessions.interrupt(session.id)
    assert stream.status == "cancelled" and await stream.get_final_text() == "half"
    with pytest.raises(NoTurnRunningError):
        await akarta.sessions.interrupt(session.id)
    chunks = [t async for t in akarta.sessions.messages.stream(session.id, "again").text_stream]
    assert "".join(chunks) == "again"
    roles = [m.role async for m in await akarta.sessions.messages.list(session.id, limit=1)]
    assert roles[-2:] == ["user", "assistant"]


async def test_project_family_session_tokens_and_management(akarta: AsyncKarta, served: FakeServer):
    project = akarta.projects("local/support-bot")
    assert project.org == "local" and project.ref == "support-bot"
    assert (await project.app.get()).harness
    token = await project.session_tokens.create(sub="async-user")
    async with AsyncKarta(api_key=token.token, base_url=served.url) as user:
        mine = await user.projects("support-bot").sessions.create()
        assert mine.metadata["user_id"] == "async-user"
        with pytest.raises(AuthenticationError):
            await user.sessions.list()
    assert any(k.name == "local serve key" for k in await akarta.keys.list())
    assert (await akarta.budget.get()).state == "ok"
    assert (await akarta.usage.get()).totals.turns >= 0
    assert [p.slug for p in await akarta.projects.list()] == ["support-bot"]
