"""Pre-started harnesses: a new session's first turn served by a process that is already up.

Starting a harness costs most of a second (Claude Code) to seconds (OpenCode) of CPU. The pool
starts processes ahead of demand, each in a sandbox and folders of its own, for a `PoolKey`:
the release, the harness kind, the default agent and the project's env vars, which are
everything a process is started with. A pooled process is started under the id the session
that adopts it will have (`sess_…`, random): its folders are that session's folders, its sandbox
that session's sandbox, its model grant that session's grant, unbound (refusing every call)
until `Runtime.create_session` binds it to the caller's organization and project.

The pool's rules:
- a pooled process is handed out once (`take` pops it; nothing awaits in between) and never
  returns: a process that served a turn is closed like any other, so no state crosses sessions;
- refills run in the background, one start at a time, after every turn waiting for a start
  (`StartGate.background`), not until `pause` seconds after the last take (the adopting
  session's first turn comes first), and a pooled process runs at the lowest CPU weight until
  a session adopts it (`SandboxHandle.foreground`): a refill only uses CPU live turns leave;
- a key's size follows its arrivals: as many processes as sessions arrived for it in the last
  `window` seconds, within `[minimum, maximum]`; a key nobody asked for in `keep` seconds gets
  none (the served folder's own key keeps `minimum` always);
- a key whose release is no longer its project's active one is retired, processes and all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from karta.app import AgentDefinition, HarnessApp
from karta.core.clock import Clock
from karta.dataplane.principal import Principal
from karta.dataplane.runtime.apps import Pin
from karta.dataplane.runtime.starts import StartGate
from karta.dataplane.runtime.turns import harness_config
from karta.dataplane.sandbox.proxy import Grant
from karta.dataplane.sandbox.session import SandboxedSession

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PoolKey:
    """What a pooled process was started with: sessions with the same key can adopt it."""

    project_id: int | None
    digest: str | None  # the release's digest; None: the served folder
    harness: str
    config: tuple[str, str]  # the agent and the env vars' digest (`turns.harness_config`)


@dataclass
class Demand:
    """A key's recipe (what its processes start from) and its recent arrivals."""

    key: PoolKey
    pin: Pin
    app: HarnessApp
    agent: AgentDefinition
    env: dict[str, str]
    principal: Principal | None  # a caller of the project: whose active release to follow
    arrivals: deque[float] = field(default_factory=deque)
    last_seen: float = 0.0
    permanent: bool = False  # the served folder's key: `minimum` whatever the traffic


@dataclass
class Pooled:
    """A started harness no session has adopted yet."""

    session_id: str  # the id the adopting session takes
    session: SandboxedSession  # at the lowest CPU weight until adopted
    grant: Grant
    key: PoolKey


def pool_key(
    project_id: int | None, pin: Pin, app: HarnessApp, agent: str, env: dict[str, str]
) -> PoolKey:
    return PoolKey(project_id, pin.digest, app.harness, harness_config(agent, env))


Start = Callable[[Demand], Awaitable[Pooled]]
Retire = Callable[[Pooled], Coroutine[Any, Any, None]]
Active = Callable[[Principal], Awaitable[Pin]]


class HarnessPool:
    def __init__(
        self,
        *,
        minimum: int,
        maximum: int,
        window: float,
        keep: float,
        clock: Clock,
        gate: StartGate,
        start: Start,
        retire: Retire,
        active: Active,
        tick: float = 1.0,
        pause: float = 0.0,
    ) -> None:
        """`pause`: how long a refill waits after a process is taken, so the adopting
        session's first turn (which follows its creation at once) has the CPU to itself."""
        self.maximum = max(0, maximum)
        self.minimum = min(max(0, minimum), self.maximum)
        self.window = window
        self.keep = keep
        self.tick = tick
        self.pause = pause
        self._taken_at = float("-inf")
        self._clock = clock
        self._gate = gate
        self._start = start
        self._retire = retire
        self._active = active
        self._demands: dict[PoolKey, Demand] = {}
        self._ready: dict[PoolKey, deque[Pooled]] = {}
        self._wake = asyncio.Event()
        self._filler: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Task[None]] = set()

    @property
    def enabled(self) -> bool:
        return self.maximum > 0

    def size(self, key: PoolKey | None = None) -> int:
        """Processes ready to be adopted (for `key`, or in all)."""
        if key is not None:
            return len(self._ready.get(key, ()))
        return sum(len(ready) for ready in self._ready.values())

    # --- demand ---------------------------------------------------------------------------------

    def serve(self, demand: Demand) -> None:
        """Keep `minimum` processes of this key ready whatever the traffic (the served
        folder's default agent, from start-up)."""
        if self.enabled and self.minimum:
            demand.permanent = True
            self._demands.setdefault(demand.key, demand).permanent = True
            self._wake.set()

    def arrived(self, demand: Demand) -> None:
        """A session was created for `demand.key`: count it and refill. A key of the same
        project on another release is retired now (the project has moved on)."""
        if not self.enabled:
            return
        now = self._clock.monotonic()
        for other in list(self._demands.values()):
            same_project = other.key.project_id == demand.key.project_id
            if same_project and other.key.digest != demand.key.digest and not other.permanent:
                self._drop(other.key)
        current = self._demands.setdefault(demand.key, demand)
        current.principal = demand.principal or current.principal
        current.arrivals.append(now)
        current.last_seen = now
        self._wake.set()

    def take(self, key: PoolKey) -> Pooled | None:
        """A ready process for `key`, handed out once."""
        ready = self._ready.get(key)
        if not ready:
            return None
        pooled = ready.popleft()
        self._taken_at = self._clock.monotonic()
        self._wake.set()
        return pooled

    def target(self, key: PoolKey) -> int:
        demand = self._demands.get(key)
        if demand is None:
            return 0
        now = self._clock.monotonic()
        while demand.arrivals and demand.arrivals[0] < now - self.window:
            demand.arrivals.popleft()
        if not demand.permanent and now - demand.last_seen > self.keep:
            return 0
        return min(self.maximum, max(self.minimum, len(demand.arrivals)))

    # --- upkeep ---------------------------------------------------------------------------------

    async def maintain(self) -> None:
        """Retire keys whose release is no longer active and processes beyond a key's target
        (memory follows use)."""
        for demand in list(self._demands.values()):
            if demand.principal is not None and demand.key.digest is not None:
                try:
                    active = await self._active(demand.principal)
                except Exception as exc:  # unknown now (an outage): keep what is there
                    log.debug("active release of %s unknown: %s", demand.key, exc)
                else:
                    if active != demand.pin:
                        log.info("release %s is no longer active: retiring its pool", demand.pin)
                        self._drop(demand.key)
                        continue
            target = self.target(demand.key)
            ready = self._ready.get(demand.key, deque())
            while len(ready) > target:
                self._close(ready.pop())
            if target == 0 and not ready:
                self._demands.pop(demand.key, None)
                self._ready.pop(demand.key, None)

    def _drop(self, key: PoolKey) -> None:
        self._demands.pop(key, None)
        for pooled in self._ready.pop(key, deque()):
            self._close(pooled)

    def _close(self, pooled: Pooled) -> None:
        task = asyncio.create_task(self._retire(pooled))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def _wanted(self) -> Demand | None:
        """The key furthest below its target, if any."""
        best, short = None, 0
        for demand in self._demands.values():
            missing = self.target(demand.key) - self.size(demand.key)
            if missing > short:
                best, short = demand, missing
        return best

    async def _fill(self) -> None:
        while True:
            try:
                await self._fill_once()
            except Exception:
                log.exception("the harness pool's upkeep failed")
                await self._clock.sleep(self.tick)

    async def _fill_once(self) -> None:
        """Start one process for the key that needs one most, or wait for a change (a take,
        an arrival) or a tick and tidy up."""
        demand = self._wanted()
        if demand is None:
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await self._clock.wait_for(self._wake.wait(), self.tick)
            await self.maintain()
            return
        rest = self._taken_at + self.pause - self._clock.monotonic()
        if rest > 0:
            await self._clock.sleep(rest)
            return  # and look again: the need may have changed meanwhile
        async with self._gate.background():
            if self._wanted() is not demand:
                return  # taken, retired or filled while waiting for a slot
            try:
                pooled = await self._start(demand)
            except Exception:
                log.exception("pre-starting a harness failed")
                pooled = None
        if pooled is None:
            await self._clock.sleep(self.tick)  # don't spin on a broken release
            return
        if self._demands.get(demand.key) is demand:
            self._ready.setdefault(demand.key, deque()).append(pooled)
        else:
            self._close(pooled)  # retired while it started

    def start(self) -> None:
        if self.enabled:
            self._filler = asyncio.create_task(self._fill())

    async def close(self) -> None:
        if self._filler is not None:
            self._filler.cancel()
            await asyncio.gather(self._filler, return_exceptions=True)
        for key in list(self._ready):
            self._drop(key)
        await asyncio.gather(*self._closing, return_exceptions=True)
