"""Per-tenant referral settings: the grace after registration for entering an invite code."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from referral_service.tenant_settings.repository import TenantSettingsRepository
from referral_service.tenant_settings.schemas import ReferralTenantSettingsRead
from service_kit.preconditions import VersionMismatch, check_version


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
        version=row.version,
        updated_by=row.updated_by,
        updated_at=row.updated_at,
    )


async def registration_grace(
    session: AsyncSession, tenant_id: str, default_grace_hours: int
) -> timedelta:
    settings = await read_settings(session, tenant_id, default_grace_hours)
    return timedelta(hours=settings.registration_bind_grace_hours)


async def update_settings(
    session: AsyncSession,
    tenant_id: str,
    grace_hours: int,
    actor: str,
    at: datetime,
    if_match: int,
    default_grace_hours: int,
) -> ReferralTenantSettingsRead:
    """Change the settings read at version ``if_match`` (412 when they changed since)."""
    repo = TenantSettingsRepository.from_session(session)
    if await repo.save(tenant_id, if_match, grace_hours, actor, at) is None:
        current = await repo.get(tenant_id)
        check_version(current.version if current else 0, if_match, "referral settings")
        raise VersionMismatch("The referral settings changed meanwhile; reload and retry.")
    return await read_settings(session, tenant_id, default_grace_hours)
