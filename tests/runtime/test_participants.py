"""Participants: who is in a session, who sent each message, what the harness reads, and that
a session token's end user acts only as themself."""

from __future__ import annotations

import asyncio

import pytest

from karta.core import events as ev
from karta.core.errors import ParticipantConflict, ParticipantForbidden
from karta.dataplane.principal import SESSION_SCOPES, Principal
from karta.dataplane.runtime.participants import ParticipantSpec
from karta.dataplane.runtime.turns import TurnRequest
from tests.runtime.conftest import CALLER, GUARD, is_done, of_type, run_turn, texts, until

END_USER = Principal(kind="session", organization_id=1, scopes=SESSION_SCOPES, sub="u-7")


async def test_two_humans_and_an_ai_are_each_attributed(runtime, fake):
    session, _ = await runtime.create_session(
        CALLER,
        {},
        participants=[
            ParticipantSpec("alice", "human", "Alice Chen"),
            ParticipantSpec("bob", "human", "Bob Park"),
        ],
    )
    turns = [
        await run_turn(session, "I need help with deployment", participant_name="alice"),
        await run_turn(session, "What is the error?", participant_name="bob"),
        await run_turn(session, "Logs attached.", participant_name="planner"),  # new, an AI
    ]

    assert [r.text for r in fake.received] == [
        "[Alice Chen (@alice, human)]: I need help with deployment",
        "[Bob Park (@bob, human)]: What is the error?",
        "[planner (@planner, ai)]: Logs attached.",
    ]
    for events, (who, kind) in zip(
        turns, [("alice", "human"), ("bob", "human"), ("planner", "ai")], strict=True
    ):
        assert {(e.participant_name, e.participant_type) for e in events} == {(who, kind)}
        message = events[0]
        assert message.type == ev.MESSAGE and message.data["participant_name"] == who
        assert events[-1].type == ev.DONE
    assert texts(turns[0]) == fake.received[0].text  # the fake echoes what it read
    view = await session.view()
    assert [(p.id, p.type, p.display_name) for p in view.participants] == [
        ("alice", "human", "Alice Chen"),
        ("bob", "human", "Bob Park"),
        ("planner", "ai", "planner"),
    ]
    assert all(p.left_at is None for p in view.participants)


async def test_a_message_naming_nobody_reaches_the_harness_as_it_is(session, fake):
    events = await run_turn(session, "plain")
    assert fake.received[-1].text == "plain"
    assert of_type(events, ev.MESSAGE) == []
    assert {e.participant_name for e in events} == {None}


async def test_a_participant_leaves_and_comes_back_by_speaking(session):
    await session.add_participant(ParticipantSpec("alice", "human"))
    gone = await session.remove_participant("alice")
    assert gone.left_at is not None
    await run_turn(session, "back again", participant_name="alice", participant_type="human")
    [alice] = (await session.view()).participants
    assert alice.left_at is None


async def test_a_participant_keeps_its_type(session):
    await session.add_participant(ParticipantSpec("alice", "human"))
    with pytest.raises(ParticipantConflict) as refused:
        await session.send(TurnRequest("hi", participant_name="alice", participant_type="ai"))
    assert refused.value.status == 409


async def test_a_session_token_end_user_is_a_participant_acting_only_as_themself(runtime, fake):
    session, _ = await runtime.create_session(END_USER, {})
    [me] = (await session.view()).participants
    assert (me.id, me.type) == ("u-7", "human")

    events = await run_turn(session, "hello")
    assert fake.received[-1].text == "hello", "alone in the session: not announced"
    operator, _ = await runtime.create_session(CALLER, {}, session.id)
    await operator.add_participant(ParticipantSpec("alice", "human"))
    await run_turn(session, "hello again")
    assert fake.received[-1].text == "[u-7 (@u-7, human)]: hello again", "with others: named"
    assert {e.participant_name for e in events} == {"u-7"}

    for attempt in (
        session.send(TurnRequest("I am bob", participant_name="bob")),
        session.add_participant(ParticipantSpec("bob", "human")),
        session.remove_participant("bob"),
        runtime.create_session(END_USER, {}, participants=[ParticipantSpec("bob", "human")]),
    ):
        with pytest.raises(ParticipantForbidden) as refused:
            await attempt
        assert refused.value.status == 403
    assert [p.id for p in (await session.view()).participants] == ["alice", "u-7"]


async def test_an_anonymous_session_token_speaks_as_nobody(runtime):
    anonymous = Principal(kind="session", organization_id=1, scopes=SESSION_SCOPES)
    session, _ = await runtime.create_session(anonymous, {})
    assert (await session.view()).participants == []
    with pytest.raises(ParticipantForbidden):
        await session.send(TurnRequest("hi", participant_name="someone"))


async def test_every_subscriber_of_a_session_sees_the_same_events(session):
    turn = await session.send(TurnRequest("to everyone", participant_name="alice"))
    watchers = [until(session, turn.after, is_done(turn)) for _ in range(3)]
    async with asyncio.timeout(GUARD):
        seen = await asyncio.gather(*watchers)
    first = [(e.seq, e.type, e.to_dict()) for e in seen[0]]
    assert all([(e.seq, e.type, e.to_dict()) for e in other] == first for other in seen[1:])
    assert first[0][1] == ev.MESSAGE and first[-1][1] == ev.DONE
