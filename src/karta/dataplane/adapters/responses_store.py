"""Which Karta session each OpenAI response ran on, so `previous_response_id` continues it.
Kept in the data plane's database (`adapter_responses`): it survives restarts."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import async_sessionmaker

from karta.store.models import AdapterResponse


async def remember(db: async_sessionmaker, response_id: str, session_id: str, turn_id: str) -> None:
    async with db() as session, session.begin():
        session.add(AdapterResponse(id=response_id, session_id=session_id, turn_id=turn_id))


async def session_of(db: async_sessionmaker, response_id: str) -> str | None:
    async with db() as session:
        row = await session.get(AdapterResponse, response_id)
    return row.session_id if row is not None else None
