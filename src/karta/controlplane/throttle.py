"""Slowing password guessing: after too many failed logins for one email (or from one IP)
within a window, further attempts get 429 with `Retry-After` — even with the right password —
until the oldest failure leaves the window. A successful login clears the email's count.
Failures are rows in the control plane's database, so every instance counts the same ones."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from karta.controlplane.models import LoginFailure
from karta.core.errors import TooManyRequests

WINDOW = timedelta(minutes=15)
MAX_PER_EMAIL = 10
MAX_PER_IP = 50


async def _window(
    session: AsyncSession, match: ColumnElement[bool], now: datetime
) -> tuple[int, datetime | None]:
    count, oldest = (
        await session.execute(
            select(func.count(), func.min(LoginFailure.at)).where(
                match, LoginFailure.at > now - WINDOW
            )
        )
    ).one()
    return int(count), oldest


async def check(session: AsyncSession, email: str, ip: str | None, now: datetime) -> None:
    limits = [(LoginFailure.email == email, MAX_PER_EMAIL)]
    if ip:
        limits.append((LoginFailure.ip == ip, MAX_PER_IP))
    for match, limit in limits:
        count, oldest = await _window(session, match, now)
        if count >= limit and oldest is not None:
            wait = math.ceil((oldest + WINDOW - now).total_seconds())
            raise TooManyRequests(
                "too many failed logins: try again later", retry_after=max(wait, 1)
            )


def failed(session: AsyncSession, email: str, ip: str | None, now: datetime) -> None:
    session.add(LoginFailure(email=email, ip=ip, at=now))


async def succeeded(session: AsyncSession, email: str, now: datetime) -> None:
    """Clear the email's failures, and forget anything that has left the window."""
    await session.execute(
        delete(LoginFailure).where(
            (LoginFailure.email == email) | (LoginFailure.at <= now - WINDOW)
        )
    )
