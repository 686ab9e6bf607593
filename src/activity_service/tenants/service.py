"""Tenant settings (time zone, base currency) and FX rates, read by the evaluation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from activity_service.tenants.fx import RateTable
from activity_service.tenants.models import FxRate
from activity_service.tenants.repository import TenantRepository
from activity_service.tenants.schemas import (
    DEFAULT_BASE_CURRENCY,
    DEFAULT_TIME_ZONE,
    FxRatesIn,
    TenantSettingsIn,
    TenantSettingsRead,
)
from service_kit.errors import Unprocessable
from service_kit.preconditions import VersionMismatch, check_version


@dataclass(frozen=True)
class TenantContext:
    """What the evaluation needs of a tenant: its zone and its rates."""

    tenant_id: str
    zone: ZoneInfo
    base_currency: str
    daily_run_at: str
    rates: RateTable


async def read_settings(session: AsyncSession, tenant_id: str) -> TenantSettingsRead:
    row = await TenantRepository.from_session(session).settings(tenant_id)
    if row is None:
        return TenantSettingsRead(
            tenant_id=tenant_id,
            time_zone=DEFAULT_TIME_ZONE,
            base_currency=DEFAULT_BASE_CURRENCY,
            daily_run_at="00:30",
            version=0,
            updated_at=None,
        )
    return TenantSettingsRead(
        tenant_id=tenant_id,
        time_zone=row.time_zone,
        base_currency=row.base_currency,
        daily_run_at=row.daily_run_at,
        version=row.version,
        updated_at=row.updated_at,
    )


async def put_settings(
    session: AsyncSession, tenant_id: str, body: TenantSettingsIn, if_match: int
) -> TenantSettingsRead:
    """Replace the settings read at version ``if_match`` (412 when they changed since)."""
    repo = TenantRepository.from_session(session)
    if await repo.save_settings(tenant_id, if_match, body.model_dump()) is None:
        current = await repo.settings(tenant_id)
        check_version(current.version if current else 0, if_match, "tenant settings")
        raise VersionMismatch("The tenant settings changed meanwhile; reload and retry.")
    return await read_settings(session, tenant_id)


async def add_rates(
    session: AsyncSession, tenant_id: str, body: FxRatesIn, actor: str
) -> list[FxRate]:
    seen: set[tuple[str, str, datetime]] = set()
    rows = []
    for index, rate in enumerate(body.rates):
        if rate.source == rate.target:
            raise Unprocessable(
                f"rates[{index}]: a rate needs two different currencies.", code="fx_same_currency"
            )
        key = (rate.source, rate.target, rate.effective_at)
        if key in seen:
            raise Unprocessable(
                f"rates[{index}]: {rate.source}->{rate.target} at "
                f"{rate.effective_at.isoformat()} is given twice.",
                code="fx_duplicate_rate",
            )
        seen.add(key)
        rows.append({**rate.model_dump(), "created_by": actor})
    return await TenantRepository.from_session(session).upsert_rates(tenant_id, rows)


async def tenant_context(session: AsyncSession, tenant_id: str) -> TenantContext:
    settings = await read_settings(session, tenant_id)
    table = RateTable()
    for rate in await TenantRepository.from_session(session).all_rates(tenant_id):
        table.add(rate.source, rate.target, rate.effective_at, rate.rate)
    return TenantContext(
        tenant_id=tenant_id,
        zone=ZoneInfo(settings.time_zone),
        base_currency=settings.base_currency,
        daily_run_at=settings.daily_run_at,
        rates=table,
    )
