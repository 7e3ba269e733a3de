"""What an adapter keeps about its session's turn in progress.

Two races are settled here for both harnesses. An interrupt may come while the turn's message
is still on its way, when the harness would find nothing to stop: the turn then stops the
harness itself once the message is through. And a permission request is decided by the turn it
arrived in, never by a later one: once that turn was told to stop it is denied without asking
anyone, and one still undecided when the turn ends is given up (its wait settled) before the
turn reports `done`; either way the harness is answered with a denial.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from karta.dataplane.harness.base import ApprovalAnswer, ToolRequest, TurnContext, Verdict

log = logging.getLogger(__name__)

NOBODY_WAITS = ApprovalAnswer(Verdict.DENY, "No turn is waiting for this decision.")


@dataclass
class RunningTurn:
    ctx: TurnContext
    sent: bool = False  # the harness has the message
    interrupted: bool = False  # the harness was (or is about to be) told to stop
    over: bool = False
    _decisions: set[asyncio.Future[ApprovalAnswer]] = field(default_factory=set)

    @property
    def stopping(self) -> bool:
        return self.interrupted or self.ctx.cancelled.is_set()

    def stop_now(self) -> bool:
        """An interrupt came: whether to tell the harness now (not before its message is
        through, see `message_sent`) and only once."""
        if self.interrupted:
            return False
        self.interrupted = True
        return self.sent

    def message_sent(self) -> bool:
        """The harness has the message: whether it must be told to stop right away."""
        self.sent = True
        self.ctx.handed.set()
        if self.stopping:
            self.interrupted = True
        return self.interrupted

    async def decide(self, request: ToolRequest) -> ApprovalAnswer:
        """The turn's answer to a permission request; `NOBODY_WAITS` once it stops or ends."""
        if self.stopping or self.over:
            return NOBODY_WAITS
        decision = asyncio.ensure_future(self.ctx.approvals(request))
        self._decisions.add(decision)
        try:
            return await decision
        except asyncio.CancelledError:
            asker = asyncio.current_task()
            if asker is not None and asker.cancelling():
                raise  # the harness gave up on the request itself: it wants no answer
            return NOBODY_WAITS  # the turn ended first (see `end`)
        except Exception:
            log.exception("deciding a permission request failed")
            return ApprovalAnswer(Verdict.DENY, "The permission request could not be decided.")
        finally:
            self._decisions.discard(decision)

    async def end(self) -> None:
        """The turn is over: undecided permission requests are given up, and their waits have
        settled before this returns."""
        self.over = True
        for decision in self._decisions:
            decision.cancel()
        await asyncio.gather(*self._decisions, return_exceptions=True)
