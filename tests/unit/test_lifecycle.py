"""The turn and approval lifecycles as pure functions: every allowed move, every refused one,
and the one fold of a turn's events into its outcome."""

import itertools

import pytest

from karta.core import events as ev
from karta.core.events import Event
from karta.core.turn_fold import TurnOutcome, TurnState, ended_state
from karta.dataplane.runtime.lifecycle import (
    APPROVAL_TRANSITIONS,
    TURN_TRANSITIONS,
    ApprovalState,
    Decision,
    IllegalTransition,
    advance,
    is_terminal,
)

T = TurnState
A = ApprovalState
TURN_MOVES = {
    (T.RUNNING, T.AWAITING_INPUT),
    (T.RUNNING, T.COMPLETED),
    (T.RUNNING, T.FAILED),
    (T.RUNNING, T.CANCELLED),
    (T.AWAITING_INPUT, T.RUNNING),
    (T.AWAITING_INPUT, T.FAILED),
    (T.AWAITING_INPUT, T.CANCELLED),
}
APPROVAL_MOVES = {(A.PENDING, s) for s in A if s is not A.PENDING}


MOVES = [
    *((c, t, (c, t) in TURN_MOVES) for c, t in itertools.product(TurnState, TurnState)),
    *((c, t, (c, t) in APPROVAL_MOVES) for c, t in itertools.product(ApprovalState, ApprovalState)),
]


@pytest.mark.parametrize(("current", "target", "allowed"), MOVES)
def test_moves_are_exactly_the_tables(current, target, allowed):
    if allowed:
        assert advance(current, target) is target
    else:
        with pytest.raises(IllegalTransition):
            advance(current, target)


def test_the_tables_cover_every_state_and_name_the_terminal_ones():
    assert set(TURN_TRANSITIONS) == set(TurnState)
    assert set(APPROVAL_TRANSITIONS) == set(ApprovalState)
    assert {s for s in TurnState if is_terminal(s)} == {T.COMPLETED, T.FAILED, T.CANCELLED}
    assert {s for s in ApprovalState if not is_terminal(s)} == {A.PENDING}


def test_a_turn_state_never_moves_to_an_approval_state():
    with pytest.raises(IllegalTransition):
        advance(T.RUNNING, A.DENIED)  # type: ignore[type-var]


def test_decisions_name_their_states():
    assert [d.state for d in Decision] == [A.APPROVED_ONCE, A.APPROVED_SESSION, A.DENIED]
    assert [d.allows for d in Decision] == [True, True, False]


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("completed", T.COMPLETED),
        ("cancelled", T.CANCELLED),
        ("failed", T.FAILED),
        ("running", T.FAILED),
        ("bogus", T.FAILED),
        (None, T.FAILED),
    ],
)
def test_a_done_ends_its_turn_in_a_final_state(status, state):
    assert ended_state(Event(ev.DONE, {"status": status})) is state


def tool(status: str) -> Event:
    part = {"id": "t1", "type": "tool", "tool": "Read", "state": {"status": status}}
    return Event(ev.TOOL_USE, {"part": part})


def test_the_fold_appends_deltas_by_part_and_joins_text_parts():
    outcome = TurnOutcome.of(
        [
            ev.text_event("a", "Hel"),
            ev.text_event("a", "lo"),
            tool("running"),
            tool("completed"),
            ev.text_event("b", "world"),
            ev.text_event("r", "thinking…", kind=ev.REASONING),
            ev.done_event({"input_tokens": 3, "output_tokens": 4, "total_tokens": 7}),
        ]
    )
    assert outcome.text == "Hello\n\nworld"
    assert outcome.parts["t1"]["data"]["state"]["status"] == "completed"
    assert outcome.parts["r"]["type"] == "reasoning"
    assert outcome.usage["total_tokens"] == 7 and outcome.tokens == (3, 4)
    assert outcome.state is T.COMPLETED and outcome.error is None


def test_feeding_returns_true_deltas_that_concatenate_to_the_text():
    outcome = TurnOutcome()
    events = [
        ev.text_event("p1", "Let me "),
        ev.text_event("p1", "check."),
        tool("running"),
        ev.text_event("p2", "Found it."),
        ev.text_event("p2", ""),
    ]
    assert [outcome.feed(e) for e in events] == ["Let me ", "check.", "", "\n\nFound it.", ""]
    assert outcome.text == "Let me check.\n\nFound it."


def test_a_pause_then_the_continuation():
    outcome = TurnOutcome()
    outcome.feed(Event(ev.INPUT_REQUIRED, {"request_id": "req_1", "tool": "Write"}))
    assert outcome.paused and outcome.finished and outcome.public_status == "paused"
    assert outcome.pending_input is not None and outcome.pending_input["request_id"] == "req_1"
    outcome.feed(tool("completed"))
    assert outcome.state is T.RUNNING and not outcome.finished
    outcome.feed(ev.done_event(status="completed"))
    assert outcome.pending_input is None and outcome.public_status == "completed"


def test_a_failed_turn_names_its_last_error():
    outcome = TurnOutcome.of(
        [ev.error_event("boom", "harness_crashed"), ev.done_event(status="failed")]
    )
    assert outcome.errors == [{"message": "boom", "code": "harness_crashed"}]
    assert outcome.error == {"code": "harness_crashed", "message": "boom"}
    assert TurnOutcome.of([ev.done_event(status="cancelled")]).error == {
        "code": "turn_cancelled",
        "message": "the turn ended cancelled",
    }
