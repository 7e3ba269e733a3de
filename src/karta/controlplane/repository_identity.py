"""The repository's identity part: who belongs to the organization (members), who is asked to
join it (invitations), and the API keys it issues."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select

from karta.controlplane.models import ApiKey, Invitation, Membership, User
from karta.controlplane.repository_base import OrgScoped
from karta.core.errors import NotFound


class KeyNotFound(NotFound):
    code = "key_not_found"


class MemberNotFound(NotFound):
    code = "member_not_found"


class InvitationNotFound(NotFound):
    code = "invitation_not_found"


class IdentityQueries(OrgScoped):
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
        return await self._one(query, MemberNotFound(f"member {user_id} not found"), row_id=user_id)

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
        missing = InvitationNotFound(f"invitation {invitation_id} not found")
        return await self._one(query, missing, row_id=invitation_id)

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
        return await self._one(query, KeyNotFound(f"API key {key_id} not found"), row_id=key_id)
