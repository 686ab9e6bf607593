from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
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

    async def save(
        self, tenant_id: str, version: int, grace_hours: int, actor: str, at: datetime
    ) -> TenantSettings | None:
        """The tenant's first settings (``version`` 0) or a change of those at ``version``;
        None when another change got there first."""
        values = {
            "registration_bind_grace_hours": grace_hours,
            "updated_by": actor,
            "updated_at": at,
        }
        stmt: Any
        if version == 0:
            stmt = (
                insert(TenantSettings)
                .values(tenant_id=tenant_id, version=1, **values)
                .on_conflict_do_nothing(index_elements=[TenantSettings.tenant_id])
            )
        else:
            stmt = (
                update(TenantSettings)
                .where(TenantSettings.tenant_id == tenant_id, TenantSettings.version == version)
                .values(**values, version=TenantSettings.version + 1)
            )
        result = await self.session.scalars(
            stmt.returning(TenantSettings), execution_options={"populate_existing": True}
        )
        return result.one_or_none()
