"""When the SDK tries a request again, and how long it waits first.

429 and 503 are retried (Karta answers them before anything ran: a rate limit, every harness
slot busy, the control plane unreachable), and so is a connection that could not be made. A
request whose connection broke after it was sent is retried only when repeating it is harmless
(GET, PUT, DELETE): a message sent twice would be a second turn. The wait is the server's
`Retry-After` when it names one (capped), else an exponential backoff with jitter.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

RETRY_STATUSES = frozenset({429, 503})
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


def retry_after(headers: Mapping[str, str]) -> float | None:
    """`Retry-After` in seconds (a number or an HTTP date), or None when absent or unreadable."""
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 2
    initial_delay: float = 0.5
    max_delay: float = 8.0
    # A server asking for longer than this is not waited for: the error goes to the caller.
    max_retry_after: float = 60.0

    def retries_status(self, status: int) -> bool:
        return status in RETRY_STATUSES

    def retries_error(self, error: httpx.TransportError, method: str) -> bool:
        """Whether a transport failure may be retried: always when nothing was sent."""
        unsent = isinstance(error, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
        return unsent or method.upper() in IDEMPOTENT

    def backoff(self, attempt: int) -> float:
        """The wait before retry number `attempt + 1`: doubling, capped, minus up to 25%."""
        delay = min(self.max_delay, self.initial_delay * 2**attempt)
        return delay * (1 - 0.25 * random.random())

    def wait(self, attempt: int, response: httpx.Response | None) -> float | None:
        """How long to wait before trying again, or None to give up (retries spent, or the
        server asked for longer than `max_retry_after`)."""
        if attempt >= self.max_retries:
            return None
        asked = retry_after(response.headers) if response is not None else None
        if asked is None:
            return self.backoff(attempt)
        return asked if asked <= self.max_retry_after else None
