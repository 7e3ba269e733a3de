"""The org-scoped repository: the only way routes and services read or write tenant data.

Every query filters by the organization the repository was opened for, so another org's row is
indistinguishable from a missing one (404). `tests/unit/test_controlplane_scoping.py` checks that
no other control-plane module queries tenant tables directly.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from karta.controlplane import timekeeping
from karta.controlplane.models import (
    MAX_INTEGER,
    ApiKey,
    AuditEvent,
    AuditHead,
    Budget,
    Invitation,
    Membership,
    Organization,
    Project,
    ProjectEnvVar,
    Release,
    Reservation,
    UsageDaily,
    UsageEvent,
    User,
)
from karta.core.clock import Clock
from karta.core.errors import NotFound, ProjectNotFound

TOKEN_FIELDS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")


def _insert_for(session: AsyncSession) -> Any:
    """INSERT … ON CONFLICT in the session's dialect."""
    dialect = session.get_bind().dialect.name
    return (postgresql if dialect == "postgresql" else sqlite).insert


class KeyNotFound(NotFound):
    code = "key_not_found"


class ReleaseNotFound(NotFound):
    code = "release_not_found"


class MemberNotFound(NotFound):
    code = "member_not_found"


class InvitationNotFound(NotFound):
    code = "invitation_not_found"


def storable(n: int) -> bool:
    """Whether `n` fits an id column. An id that does not names no row, so it is never sent to
    the database, whose driver would fail on it instead of finding nothing."""
    return 1 <= n <= MAX_INTEGER


def spelled_id(text: str) -> int | None:
    """The storable id `text` spells in ASCII digits (`"12"`, not `"١٢"` nor `"²"`), or None."""
    if text.isascii() and text.isdigit() and len(text) <= len(str(MAX_INTEGER)):
        n = int(text)
        return n if storable(n) else None
    return None


class OrgRepository:
    def __init__(self, session: AsyncSession, organization_id: int) -> None:
        self.session = session
        self.organization_id = organization_id

    @property
    def clock(self) -> Clock:
        return timekeeping.clock_of(self.session)

    def add(self, row: Any) -> None:
        """Stage a new tenant row; it always lands in this organization."""
        row.organization_id = self.organization_id
        self.session.add(row)

    async def organization(self) -> Organization:
        org = await self.session.get(Organization, self.organization_id)
        if org is None:
            raise NotFound("organization not found")
        return org

    # --- members -------------------------------------------------------------------------------

    async def members(self) -> list[tuple[Membership, User]]:
        rows = await self.session.execute(
            select(Membership, User)
            .join(User, User.id == Membership.user_id)
            .where(Membership.organization_id == self.organization_id)
            .order_by(Membership.id)
        )
        return [(m, u) for m, u in rows.tuples()]

    async def membership(self, user_id: int) -> Membership:
        query = select(Membership).where(
            Membership.organization_id == self.organization_id, Membership.user_id == user_id
        )
        found = await self.session.scalar(query) if storable(user_id) else None
        if found is None:
            raise MemberNotFound(f"member {user_id} not found")
        return found

    async def owner_count(self) -> int:
        return int(
            await self.session.scalar(
                select(func.count())
                .select_from(Membership)
                .where(
                    Membership.organization_id == self.organization_id, Membership.role == "owner"
                )
            )
            or 0
        )

    # --- invitations ---------------------------------------------------------------------------

    async def pending_invitations(self) -> list[Invitation]:
        """Not yet answered nor revoked (expired ones included: they show as expired)."""
        rows = await self.session.scalars(
            select(Invitation)
            .where(
                Invitation.organization_id == self.organization_id, Invitation.status == "pending"
            )
            .order_by(Invitation.id)
        )
        return list(rows.all())

    async def open_invitation(self, email: str, now: datetime) -> Invitation | None:
        """The email's pending invitation that has not expired, if any."""
        return await self.session.scalar(
            select(Invitation).where(
                Invitation.organization_id == self.organization_id,
                Invitation.email == email,
                Invitation.status == "pending",
                Invitation.expires_at > now,
            )
        )

    async def invitation(self, invitation_id: int) -> Invitation:
        query = select(Invitation).where(
            Invitation.organization_id == self.organization_id, Invitation.id == invitation_id
        )
        found = await self.session.scalar(query) if storable(invitation_id) else None
        if found is None:
            raise InvitationNotFound(f"invitation {invitation_id} not found")
        return found

    # --- keys ----------------------------------------------------------------------------------

    async def keys(self) -> list[ApiKey]:
        rows = await self.session.scalars(
            select(ApiKey).where(ApiKey.organization_id == self.organization_id).order_by(ApiKey.id)
        )
        return list(rows.all())

    async def key(self, key_id: int) -> ApiKey:
        query = select(ApiKey).where(
            ApiKey.organization_id == self.organization_id, ApiKey.id == key_id
        )
        found = await self.session.scalar(query) if storable(key_id) else None
        if found is None:
            raise KeyNotFound(f"API key {key_id} not found")
        return found

    # --- projects ------------------------------------------------------------------------------

    async def projects(self) -> list[Project]:
        rows = await self.session.scalars(
            select(Project)
            .where(Project.organization_id == self.organization_id)
            .order_by(Project.id)
        )
        return list(rows.all())

    async def find_project(self, ref: str) -> Project | None:
        """By slug, or by numeric id."""
        match = Project.slug == ref
        if (project_id := spelled_id(ref)) is not None:
            match = match | (Project.id == project_id)
        return await self.session.scalar(
            select(Project).where(Project.organization_id == self.organization_id, match).limit(1)
        )

    async def project(self, ref: str, *, lock: bool = False) -> Project:
        """With `lock`, the row is held until the transaction ends: version allocation and the
        active-release pointer are serialized per project."""
        found = await self.find_project(ref)
        if found is None:
            raise ProjectNotFound(f"project {ref!r} not found")
        if lock:
            await self.session.refresh(found, with_for_update=True)
        return found

    # --- releases ------------------------------------------------------------------------------

    async def releases(self, project_id: int) -> list[Release]:
        rows = await self.session.scalars(
            select(Release)
            .where(
                Release.organization_id == self.organization_id, Release.project_id == project_id
            )
            .order_by(Release.version)
        )
        return list(rows.all())

    async def find_release(
        self, project_id: int, *, version: int | None = None, release_id: int | None = None
    ) -> Release | None:
        query = select(Release).where(
            Release.organization_id == self.organization_id, Release.project_id == project_id
        )
        if version is not None:
            query = query.where(Release.version == version)
        if release_id is not None:
            query = query.where(Release.id == release_id)
        return await self.session.scalar(query)

    async def release(self, project_id: int, version: int) -> Release:
        found = await self.find_release(project_id, version=version)
        if found is None:
            raise ReleaseNotFound(f"release v{version} not found")
        return found

    async def ready_release_with_digest(self, project_id: int, digest: str) -> Release | None:
        return await self.session.scalar(
            select(Release)
            .where(
                Release.organization_id == self.organization_id,
                Release.project_id == project_id,
                Release.digest == digest,
                Release.status == "ready",
            )
            .order_by(Release.version.desc())
            .limit(1)
        )

    async def latest_version(self, project_id: int) -> int:
        found = await self.session.scalar(
            select(func.max(Release.version)).where(
                Release.organization_id == self.organization_id, Release.project_id == project_id
            )
        )
        return int(found or 0)

    async def holds_digest(self, digest: str) -> bool:
        found = await self.session.scalar(
            select(Release.id)
            .where(Release.organization_id == self.organization_id, Release.digest == digest)
            .limit(1)
        )
        return found is not None

    # --- project env vars ----------------------------------------------------------------------

    async def env_vars(self, project_id: int) -> list[ProjectEnvVar]:
        rows = await self.session.scalars(
            select(ProjectEnvVar)
            .where(
                ProjectEnvVar.organization_id == self.organization_id,
                ProjectEnvVar.project_id == project_id,
            )
            .order_by(ProjectEnvVar.name)
        )
        return list(rows.all())

    async def env_var(self, project_id: int, name: str) -> ProjectEnvVar | None:
        return await self.session.scalar(
            select(ProjectEnvVar).where(
                ProjectEnvVar.organization_id == self.organization_id,
                ProjectEnvVar.project_id == project_id,
                ProjectEnvVar.name == name,
            )
        )

    # --- money ---------------------------------------------------------------------------------

    async def budget(self, *, lock: bool = False) -> Budget:
        """The org's budget row. With `lock`, held until the transaction ends (PostgreSQL row
        lock; SQLite already serializes write transactions)."""
        query = select(Budget).where(Budget.organization_id == self.organization_id)
        if lock:
            query = query.with_for_update()
        found = await self.session.scalar(query)
        if found is None:
            raise NotFound("budget not found")
        return found

    async def spent(self, start: date, end: date, api_key_id: int | None = None) -> tuple[int, int]:
        """Tokens and cost (micro-cents) metered in [start, end)."""
        query = select(
            func.coalesce(func.sum(UsageDaily.input_tokens + UsageDaily.output_tokens), 0),
            func.coalesce(func.sum(UsageDaily.cost_micros), 0),
        ).where(
            UsageDaily.organization_id == self.organization_id,
            UsageDaily.day >= start,
            UsageDaily.day < end,
        )
        if api_key_id is not None:
            query = query.where(UsageDaily.api_key_id == api_key_id)
        tokens, cost = (await self.session.execute(query)).one()
        return int(tokens), int(cost)

    async def reserved(self, now: datetime, api_key_id: int | None = None) -> tuple[int, int]:
        """Tokens and cost held by open, unexpired reservations."""
        query = select(
            func.coalesce(func.sum(Reservation.tokens), 0),
            func.coalesce(func.sum(Reservation.cost_micros), 0),
        ).where(
            Reservation.organization_id == self.organization_id,
            Reservation.settled_at.is_(None),
            Reservation.expires_at > now,
        )
        if api_key_id is not None:
            query = query.where(Reservation.api_key_id == api_key_id)
        tokens, cost = (await self.session.execute(query)).one()
        return int(tokens), int(cost)

    async def reservation(self, reservation_id: str) -> Reservation | None:
        return await self.session.scalar(
            select(Reservation).where(
                Reservation.organization_id == self.organization_id,
                Reservation.id == reservation_id,
            )
        )

    async def record_usage(self, values: dict[str, Any]) -> bool:
        """Add a ledger row and its day's roll-up; False when the event id was seen before.
        Both are single statements (insert-or-skip, upsert), safe under concurrent batches."""
        insert = _insert_for(self.session)
        row = {**values, "organization_id": self.organization_id}
        inserted = await self.session.scalar(
            insert(UsageEvent)
            .values(**row)
            .on_conflict_do_nothing(index_elements=["organization_id", "client_event_id"])
            .returning(UsageEvent.id)
        )
        if inserted is None:
            return False
        counters = ("turns", "cost_micros", *TOKEN_FIELDS)
        daily = insert(UsageDaily).values(
            organization_id=self.organization_id,
            day=row["occurred_at"].astimezone(UTC).date(),
            api_key_id=row["api_key_id"] or 0,
            turns=1,
            **{name: row[name] for name in counters if name != "turns"},
        )
        columns = UsageDaily.__table__.c
        await self.session.execute(
            daily.on_conflict_do_update(
                index_elements=["organization_id", "day", "api_key_id"],
                set_={name: columns[name] + daily.excluded[name] for name in counters},
            )
        )
        return True

    async def settle(self, reservation_id: str) -> None:
        await self.session.execute(
            update(Reservation)
            .where(
                Reservation.organization_id == self.organization_id,
                Reservation.id == reservation_id,
            )
            .values(settled_at=self.clock.now())
        )

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
            .group_by(UsageEvent.model)
            .order_by(UsageEvent.model)
        )
        return [
            {
                "model": model,
                "turns": int(turns),
                "input_tokens": int(inp or 0),
                "output_tokens": int(out or 0),
                "cost_micros": int(cost or 0),
            }
            for model, turns, inp, out, cost in rows.tuples()
        ]

    # --- audit ---------------------------------------------------------------------------------

    async def audit_head(self, *, lock: bool = False) -> AuditHead:
        query = select(AuditHead).where(AuditHead.organization_id == self.organization_id)
        if lock:
            query = query.with_for_update()
        found = await self.session.scalar(query)
        if found is None:
            raise NotFound("audit head not found")
        return found

    async def reported_audit_event(self, client_event_id: str) -> AuditEvent | None:
        return await self.session.scalar(
            select(AuditEvent).where(
                AuditEvent.organization_id == self.organization_id,
                AuditEvent.client_event_id == client_event_id,
            )
        )

    async def audit_events(self, after: int, limit: int) -> list[AuditEvent]:
        rows = await self.session.scalars(
            select(AuditEvent)
            .where(AuditEvent.organization_id == self.organization_id, AuditEvent.seq > after)
            .order_by(AuditEvent.seq)
            .limit(limit)
        )
        return list(rows.all())
