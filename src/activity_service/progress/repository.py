from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import String, any_, bindparam, select, tuple_
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.ext.asyncio import AsyncSession

from activity_service.progress.models import Device


class DeviceRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @classmethod
    def from_session(cls, session: AsyncSession) -> DeviceRepository:
        return cls(session)

    async def claim(
        self, tenant_id: str, app_id: str, device_id: str, user_id: str, at: datetime, event_id: str
    ) -> Device:
        """Record a login; the earliest login (time, then event id) owns the device, so the
        owner does not depend on which login was processed first."""
        stmt = insert(Device).values(
            tenant_id=tenant_id,
            app_id=app_id,
            device_id=device_id,
            first_user_id=user_id,
            first_seen_at=at,
            first_event_id=event_id,
        )
        upsert = stmt.on_conflict_do_update(
            index_elements=["tenant_id", "app_id", "device_id"],
            set_={
                "first_user_id": stmt.excluded.first_user_id,
                "first_seen_at": stmt.excluded.first_seen_at,
                "first_event_id": stmt.excluded.first_event_id,
            },
            where=tuple_(stmt.excluded.first_seen_at, stmt.excluded.first_event_id)
            < tuple_(Device.first_seen_at, Device.first_event_id),
        ).returning(Device)
        claimed = (await self.session.scalars(upsert)).one_or_none()
        if claimed is not None:
            return claimed
        existing = await self.session.scalar(
            select(Device).where(
                Device.tenant_id == tenant_id,
                Device.app_id == app_id,
                Device.device_id == device_id,
            )
        )
        assert existing is not None
        return existing

    async def first_new_device_login(self, tenant_id: str, user_id: str) -> Device | None:
        """The user's earliest login on a device nobody used before them."""
        return await self.session.scalar(
            select(Device)
            .where(Device.tenant_id == tenant_id, Device.first_user_id == user_id)
            .order_by(Device.first_seen_at, Device.first_event_id)
            .limit(1)
        )

    async def first_new_device_logins(
        self, tenant_id: str, user_ids: Sequence[str]
    ) -> dict[str, datetime]:
        """``first_new_device_login`` of many users at once: {user: first seen at}."""
        if not user_ids:
            return {}
        stmt = (
            select(Device.first_user_id, Device.first_seen_at)
            .where(
                Device.tenant_id == tenant_id,
                Device.first_user_id == any_(bindparam("user_ids", list(user_ids), ARRAY(String))),
            )
            .order_by(Device.first_user_id, Device.first_seen_at, Device.first_event_id)
            .distinct(Device.first_user_id)
        )
        return {row[0]: row[1] for row in (await self.session.execute(stmt)).all()}
