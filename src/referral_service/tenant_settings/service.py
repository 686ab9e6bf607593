"""Per-tenant referral settings: the grace after registration for entering an invite code."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from referral_service.tenant_settings.repository import TenantSettingsRepository
from referral_service.tenant_settings.schemas import ReferralTenantSettingsRead


async def read_settings(
    session: AsyncSession, tenant_id: str, default_grace_hours: int
) -> ReferralTenantSettingsRead:
    row = await TenantSettingsRepository.from_session(session).get(tenant_id)
    if row is None:
        return ReferralTenantSettingsRead(
            registration_bind_grace_hours=default_grace_hours, is_default=True
        )
    return ReferralTenantSettingsRead(
        registration_bind_grace_hours=row.registration_bind_grace_hours,
        is_default=False,
        updated_by=row.updated_by,
        updated_at=row.updated_at,
    )


async def registration_grace(
    session: AsyncSession, tenant_id: str, default_grace_hours: int
) -> timedelta:
    settings = await read_settings(session, tenant_id, default_grace_hours)
    return timedelta(hours=settings.registration_bind_grace_hours)


async def update_settings(
    session: AsyncSession, tenant_id: str, grace_hours: int, actor: str, at: datetime
) -> ReferralTenantSettingsRead:
    row = await TenantSettingsRepository.from_session(session).upsert(
        tenant_id, grace_hours, actor, at
    )
    return ReferralTenantSettingsRead(
        registration_bind_grace_hours=row.registration_bind_grace_hours,
        is_default=False,
        updated_by=row.updated_by,
        updated_at=row.updated_at,
    )
