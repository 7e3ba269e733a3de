"""The turn and approval lifecycles: their transition tables and the one way to move.

States are enums with explicit transition tables; `advance` is the only way to move between
them and refuses anything the table does not allow:

    turn:      running → awaiting_input → running → completed | failed | cancelled
    approval:  pending → approved_once | approved_session | denied | expired | aborted

The turn states themselves live in `karta.core.turn_fold`, with the fold of a turn's events
into its outcome that the clients share.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any, TypeVar

from karta.core.turn_fold import ENDED_STATES, TurnState


class ApprovalState(StrEnum):
    PENDING = "pending"
    APPROVED_ONCE = "approved_once"
    APPROVED_SESSION = "approved_session"
    DENIED = "denied"
    EXPIRED = "expired"
    ABORTED = "aborted"


class Decision(StrEnum):
    """What a person answers to an approval (the API's words)."""

    APPROVE_ONCE = "approve_once"
    APPROVE_SESSION = "approve_session"
    DENY = "deny"

    @property
    def state(self) -> ApprovalState:
        return DECIDED[self]

    @property
    def allows(self) -> bool:
        return self is not Decision.DENY


DECIDED = {
    Decision.APPROVE_ONCE: ApprovalState.APPROVED_ONCE,
    Decision.APPROVE_SESSION: ApprovalState.APPROVED_SESSION,
    Decision.DENY: ApprovalState.DENIED,
}


TURN_TRANSITIONS: Mapping[TurnState, frozenset[TurnState]] = {
    TurnState.RUNNING: frozenset({TurnState.AWAITING_INPUT, *ENDED_STATES}),
    TurnState.AWAITING_INPUT: frozenset({TurnState.RUNNING, TurnState.FAILED, TurnState.CANCELLED}),
    **{state: frozenset() for state in ENDED_STATES},
}
APPROVAL_TRANSITIONS: Mapping[ApprovalState, frozenset[ApprovalState]] = {
    ApprovalState.PENDING: frozenset(set(ApprovalState) - {ApprovalState.PENDING}),
    **{state: frozenset() for state in ApprovalState if state is not ApprovalState.PENDING},
}
# Turn states in which a turn still holds its session (a new message gets 409).
LIVE_TURN_STATES = frozenset({TurnState.RUNNING, TurnState.AWAITING_INPUT})

S = TypeVar("S", TurnState, ApprovalState)


class IllegalTransition(Exception):
    """A state change the lifecycle does not allow: a bug, never a client's mistake."""


def advance(current: S, target: S) -> S:
    """`target`, if the lifecycle allows moving there from `current`; else IllegalTransition."""
    table: Mapping[Any, frozenset[Any]] = (
        TURN_TRANSITIONS if isinstance(current, TurnState) else APPROVAL_TRANSITIONS
    )
    if type(target) is not type(current) or target not in table[current]:
        raise IllegalTransition(f"{type(current).__name__}: {current} → {target} is not allowed")
    return target


def is_terminal(state: TurnState | ApprovalState) -> bool:
    table: Mapping[Any, frozenset[Any]] = (
        TURN_TRANSITIONS if isinstance(state, TurnState) else APPROVAL_TRANSITIONS
    )
    return not table[state]
