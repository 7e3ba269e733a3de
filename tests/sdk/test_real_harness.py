"""The SDK against `karta serve` with the real Claude Code harness and the scripted model: a
streamed turn typed and folded, its replay, a unary turn, the transcript the harness wrote."""

from __future__ import annotations

import pytest

from karta.client import AsyncKarta, AuthenticationError, Karta, NoTurnRunningError
from karta.client.events import DoneEvent, TextEvent
from karta.testing import text
from tests.conftest import KartaServer

pytestmark = pytest.mark.harness


def test_a_streamed_turn_its_replay_and_the_transcript(server: KartaServer, model):
    model.enqueue([text("Sunrise is our light roast.")])
    with Karta(api_key=server.api_key, base_url=server.url) as client:
        assert client.app.get().name == "support-bot"
        session = client.sessions.create(metadata={"via": "sdk"})
        with client.sessions.messages.stream(session.id, "Which roast is light?") as stream:
            events = list(stream)
        assert isinstance(events[-1], DoneEvent) and events[-1].status == "completed"
        assert "".join(e.text for e in events if isinstance(e, TextEvent)) == (
            "Sunrise is our light roast."
        )
        assert stream.get_final_text() == "Sunrise is our light roast."
        assert stream.usage.total_tokens
        replay = list(client.sessions.events(session.id, after=0))
        assert [e.seq for e in replay] == [e.seq for e in events]
        with pytest.raises(NoTurnRunningError):
            client.sessions.interrupt(session.id)
        transcript = list(client.sessions.messages.list(session.id))
        assert [m.role for m in transcript][:2] == ["user", "assistant"]
        assert transcript[0].text == "Which roast is light?"
    bad = Karta(api_key="kt_live_" + "0" * 32, base_url=server.url)
    with bad, pytest.raises(AuthenticationError):
        bad.sessions.create()


async def test_an_async_unary_turn(server: KartaServer, model):
    model.enqueue([text("Dark: Midnight.")])
    async with AsyncKarta(api_key=server.api_key, base_url=server.url) as client:
        session = await client.sessions.create()
        turn = await client.sessions.messages.send(session.id, "And a dark one?")
    assert turn.status == "completed" and turn.text == "Dark: Midnight."
    assert turn.usage.total_tokens and turn.messages[-1].role == "assistant"
