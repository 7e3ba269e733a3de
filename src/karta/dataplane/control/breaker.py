"""A circuit breaker for calls to the control plane: after `threshold` consecutive network
failures it opens for `window` seconds, during which calls fail fast instead of piling onto a
control plane that is down; any HTTP answer closes it.

After the window the next call goes through; if it fails too the breaker opens again at once
(the failure count is still at the threshold), so a dead control plane sees one probe per window.
"""

from __future__ import annotations

import math

from karta.core.clock import SYSTEM, Clock


class CircuitBreaker:
    def __init__(
        self,
        threshold: int = 5,
        window: float = 2.0,
        clock: Clock = SYSTEM,
    ) -> None:
        self.threshold = max(threshold, 1)
        self.window = window
        self._clock = clock
        self._failures = 0
        self._open_until = 0.0

    def retry_after(self) -> int | None:
        """Whole seconds until calls may go through again, or None while closed."""
        remaining = self._open_until - self._clock.monotonic()
        return max(math.ceil(remaining), 1) if remaining > 0 else None

    def success(self) -> None:
        self._failures = 0
        self._open_until = 0.0

    def failure(self) -> None:
        self._failures += 1
        if self._failures >= self.threshold:
            self._open_until = self._clock.monotonic() + self.window
