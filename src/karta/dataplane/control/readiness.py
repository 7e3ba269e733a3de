"""What `/readyz` knows of the control plane, without adding load to it.

Readiness is polled often (load balancers, orchestrators, every replica), and a poll that calls
the control plane each time would hammer it exactly when it struggles. So the answer comes from
one cheap probe (`ControlPlaneClient.probe`) at most every `interval` seconds, shared by
concurrent polls; the probe goes through the client's circuit breaker like every call, so while
the breaker is open (ordinary traffic keeps failing) it makes no call at all.
"""

from __future__ import annotations

from karta.core.clock import SYSTEM, Clock
from karta.dataplane.control.cache import SingleFlight
from karta.dataplane.control.client import ControlPlaneClient, ControlPlaneUnavailable

OK = "ok"
PROBE_INTERVAL = 2.0


class ControlPlaneProbe:
    def __init__(
        self, client: ControlPlaneClient, *, interval: float = PROBE_INTERVAL, clock: Clock = SYSTEM
    ) -> None:
        self.client = client
        self.interval = interval
        self._clock = clock
        self._flight = SingleFlight()
        self._last: tuple[float, str] | None = None  # when it was probed, and what it said

    async def state(self) -> str:
        """`ok`, or why the control plane cannot serve us (`ControlPlaneUnavailable.state`)."""
        now = self._clock.monotonic()
        if self._last is not None and now - self._last[0] < self.interval:
            return self._last[1]
        return await self._flight.run("probe", self._probe)

    async def _probe(self) -> str:
        try:
            await self.client.probe()
        except ControlPlaneUnavailable as exc:
            state = exc.state
        else:
            state = OK
        self._last = (self._clock.monotonic(), state)
        return state
