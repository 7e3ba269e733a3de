"""The repository's money part: the organization's budget and the usage ledger with its daily
roll-up."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from karta.controlplane.models import Budget, UsageDaily, UsageEvent
from karta.controlplane.repository_base import OrgScoped
from karta.core.errors import NotFound

TOKEN_FIELDS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")


def _insert_for(session: AsyncSession) -> Any:
    """INSERT … ON CONFLICT in the session's dialect."""
    dialect = session.get_bind().dialect.name
    return (postgresql if dialect == "postgresql" else sqlite).insert


class MoneyQueries(OrgScoped):
    async def budget(self, *, lock: bool = False) -> Budget:
        """The org's budget row. With `lock`, held until the transaction ends (PostgreSQL row
        lock; SQLite already serializes write transactions)."""
        query = select(Budget).where(Budget.organization_id == self.organization_id)
        return await self._one(query, NotFound("budget not found"), lock=lock)

    async def spent(self, start: date, end: date, api_key_id: int | None = None) -> tuple[int, int]:
        """Tokens and the cost (micro-cents) the cost cap counts, metered in [start, end)."""
        query = select(
            func.coalesce(func.sum(UsageDaily.input_tokens + UsageDaily.output_tokens), 0),
            func.coalesce(func.sum(UsageDaily.cap_cost_micros), 0),
        ).where(
            UsageDaily.organization_id == self.organization_id,
            UsageDaily.day >= start,
            UsageDaily.day < end,
        )
        if api_key_id is not None:
            query = query.where(UsageDaily.api_key_id == api_key_id)
        tokens, cost = (await self.session.execute(query)).one()
        return int(tokens), int(cost)

    async def anonymous_spent(self, embed_key_id: int, start: datetime, end: datetime) -> int:
        """Cost (micro-cents) of the anonymous end users of one embed key in [start, end)."""
        found = await self.session.scalar(
            select(func.coalesce(func.sum(UsageEvent.cost_micros), 0)).where(
                UsageEvent.organization_id == self.organization_id,
                UsageEvent.embed_key_id == embed_key_id,
                UsageEvent.occurred_at >= start,
                UsageEvent.occurred_at < end,
            )
        )
        return int(found or 0)

    async def record_usage(self, values: dict[str, Any]) -> bool:
        """Add a ledger row and its day's roll-up; False when the event id was seen before.
        Both are single statements (insert-or-skip, upsert), safe under concurrent batches."""
        insert = _insert_for(self.session)
        row = {**values, "organization_id": self.organization_id}
        event = {k: v for k, v in row.items() if k != "cap_cost_micros"}
        inserted = await self.session.scalar(
            insert(UsageEvent)
            .values(**event)
            .on_conflict_do_nothing(index_elements=["organization_id", "client_event_id"])
            .returning(UsageEvent.id)
        )
        if inserted is None:
            return False
        counters = ("model_calls", "cost_micros", "cap_cost_micros", *TOKEN_FIELDS)
        daily = insert(UsageDaily).values(
            organization_id=self.organization_id,
            day=row["occurred_at"].astimezone(UTC).date(),
            api_key_id=row["api_key_id"] or 0,
            model_calls=1,
            **{name: row[name] for name in counters if name != "model_calls"},
        )
        columns = UsageDaily.__table__.c
        await self.session.execute(
            daily.on_conflict_do_update(
                index_elements=["organization_id", "day", "api_key_id"],
                set_={name: columns[name] + daily.excluded[name] for name in counters},
            )
        )
        return True

    async def usage_days(self, start: date, end: date) -> list[UsageDaily]:
        rows = await self.session.scalars(
            select(UsageDaily)
            .where(
                UsageDaily.organization_id == self.organization_id,
                UsageDaily.day >= start,
                UsageDaily.day < end,
            )
            .order_by(UsageDaily.day, UsageDaily.api_key_id)
        )
        return list(rows.all())

    async def usage_by_model(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        rows = await self.session.execute(
            select(
                UsageEvent.model,
                UsageEvent.provider,
                UsageEvent.key_owner,
                func.count(),
                func.sum(UsageEvent.input_tokens),
                func.sum(UsageEvent.output_tokens),
                func.sum(UsageEvent.cost_micros),
            )
            .where(
                UsageEvent.organization_id == self.organization_id,
                UsageEvent.occurred_at >= start,
                UsageEvent.occurred_at < end,
            )
            .group_by(UsageEvent.model, UsageEvent.provider, UsageEvent.key_owner)
            .order_by(UsageEvent.model, UsageEvent.provider, UsageEvent.key_owner)
        )
        return [
            {
                "model": model,
                "provider": provider,
                "key_owner": owner,
                "model_calls": int(calls),
                "input_tokens": int(inp or 0),
                "output_tokens": int(out or 0),
                "cost_micros": int(cost or 0),
            }
            for model, provider, owner, calls, inp, out, cost in rows.tuples()
        ]
