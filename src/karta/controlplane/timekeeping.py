"""The control plane's clock rides on its database sessions.

`create_control_app` puts the clock it was given into the sessionmaker's `info`, so everything
that holds a session — routes, the internal API, budgets, credential checks — reads the same
time without threading a clock through every call, and a test swaps in a `FakeClock` in one
place. A session made elsewhere (a bare sessionmaker) falls back to the system clock.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from karta.core.clock import SYSTEM, Clock

_KEY = "karta.core.clock"


def bind(db: async_sessionmaker, clock: Clock) -> None:
    """Every session `db` makes from now on carries `clock`."""
    db.configure(info={_KEY: clock})


def clock_of(session: AsyncSession) -> Clock:
    found: Clock = session.info.get(_KEY, SYSTEM)
    return found
