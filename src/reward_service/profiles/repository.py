from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from reward_service.profiles.models import UserProfile
from service_kit.db import any_of


def _newer(new_at: Any, stored_at: Any) -> ColumnElement[bool]:
    return and_(new_at.is_not(None), or_(stored_at.is_(None), new_at >= stored_at))


class ProfileRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @classmethod
    def from_session(cls, session: AsyncSession) -> ProfileRepository:
        return cls(session)

    async def merge(self, values: dict[str, Any], now: datetime) -> None:
        """One upsert: each field (phone; enterprise) takes the new value only when its fact
        is at least as new as the stored one, so events handled out of order converge."""
        stmt = insert(UserProfile).values(**values, updated_at=now)
        new, table = stmt.excluded, UserProfile.__table__.c
        phone_newer = _newer(new.phone_at, table.phone_at)
        cert_newer = _newer(new.certified_at, table.certified_at)

        def pick(newer: ColumnElement[bool], column: str) -> Any:
            return case((newer, new[column]), else_=table[column])

        await self.session.execute(
            stmt.on_conflict_do_update(
                index_elements=["tenant_id", "user_id"],
                set_={
                    "phone": pick(phone_newer, "phone"),
                    "phone_at": pick(phone_newer, "phone_at"),
                    "enterprise_id": pick(cert_newer, "enterprise_id"),
                    "enterprise_name": pick(cert_newer, "enterprise_name"),
                    "certified_at": pick(cert_newer, "certified_at"),
                    "updated_at": now,
                },
            )
        )

    async def of_users(self, tenant_id: str, user_ids: Sequence[str]) -> dict[str, UserProfile]:
        if not user_ids:
            return {}
        rows = await self.session.scalars(
            select(UserProfile).where(
                UserProfile.tenant_id == tenant_id, any_of(UserProfile.user_id, set(user_ids))
            )
        )
        return {p.user_id: p for p in rows}


def users_with_phone(tenant_id: str, phone: str) -> Select[Any]:
    """The users whose latest known phone is ``phone`` (normalized), as a subquery."""
    return select(UserProfile.user_id).where(
        UserProfile.tenant_id == tenant_id, UserProfile.phone == phone
    )
