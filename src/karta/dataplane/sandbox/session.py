"""A harness session that takes its sandbox (and its model credential) down with it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from karta.core.events import Event
from karta.dataplane.harness.base import HarnessSession, TurnContext
from karta.dataplane.sandbox.base import SandboxHandle


class SandboxedSession:
    def __init__(
        self,
        inner: HarnessSession,
        sandbox: SandboxHandle,
        cleanup: Callable[[], Awaitable[None]],
    ) -> None:
        self.inner = inner
        self.sandbox = sandbox
        self.harness_session_id = inner.harness_session_id
        self.agent = inner.agent
        self._cleanup = cleanup

    def turn(self, ctx: TurnContext) -> AsyncIterator[Event]:
        return self.inner.turn(ctx)

    async def interrupt(self) -> None:
        await self.inner.interrupt()

    async def close(self, *, force: bool = False) -> None:
        """The harness closes itself first (gracefully unless `force`); then nothing of it may
        survive."""
        try:
            await self.inner.close(force=force)
        finally:
            await self._cleanup()

    def __getattr__(self, name: str) -> Any:
        # Whatever else a harness session offers (added to the protocol later) passes through.
        return getattr(self.inner, name)
