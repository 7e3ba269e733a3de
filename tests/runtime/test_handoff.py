"""A message for another agent hands the session over: a `system` handoff event, and the
harness reopened for the new agent on the same conversation."""

from __future__ import annotations

from karta.core import events as ev
from karta.testing.fake_harness import Say
from tests.runtime.conftest import of_type, run_turn


async def test_a_message_for_another_agent_hands_the_session_over(session, fake):
    await run_turn(session, "hi")
    fake.enqueue(Say("Billing here."))
    events = await run_turn(session, "about my invoice", agent="billing")

    [handoff] = of_type(events, ev.SYSTEM)
    assert handoff.data == {"subtype": "handoff", "from": "triage", "to": "billing"}
    assert events[0] is handoff and handoff.turn_id == events[-1].turn_id  # the turn's first
    assert [(s.agent.name, s.resume) for s in fake.opened] == [("triage", False), ("billing", True)]
    assert fake.closed == [session.id] and fake.killed == []  # triage made way, cleanly
    first, second = fake.received
    assert (first.agent, first.handoff) == ("triage", False)
    assert (second.agent, second.handoff) == ("billing", True)
    assert (await session.view()).current_agent == "billing"

    await run_turn(session, "thanks")  # the same agent again: warm, no handoff
    assert fake.received[-1].handoff is False and fake.received[-1].agent == "billing"
    assert len(fake.opened) == 2
