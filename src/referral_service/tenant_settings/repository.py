from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from referral_service.tenant_settings.models import TenantSettings


class TenantSettingsRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @classmethod
    def from_session(cls, session: AsyncSession) -> TenantSettingsRepository:
        return cls(session)

    async def get(self, tenant_id: str) -> TenantSettings | None:
        return await self.session.scalar(
            select(TenantSettings).where(TenantSettings.tenant_id == tenant_id)
        )

    async def upsert(
        self, tenant_id: str, grace_hours: int, actor: str, at: datetime
    ) -> TenantSettings:
        values = insert(TenantSettings).values(
            tenant_id=tenant_id,
            registration_bind_grace_hours=grace_hours,
            updated_by=actor,
            updated_at=at,
        )
        stmt = values.on_conflict_do_update(
            index_elements=[TenantSettings.tenant_id],
            set_={
                "registration_bind_grace_hours": values.excluded.registration_bind_grace_hours,
                "updated_by": values.excluded.updated_by,
                "updated_at": values.excluded.updated_at,
            },
        ).returning(TenantSettings)
        result = await self.session.scalars(stmt, execution_options={"populate_existing": True})
        return result.one()
