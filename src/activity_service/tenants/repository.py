from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from activity_service.tenants.models import FxRate, TenantSettings
from service_kit.pagination import PageParams, paginate


class TenantRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @classmethod
    def from_session(cls, session: AsyncSession) -> TenantRepository:
        return cls(session)

    async def settings(self, tenant_id: str) -> TenantSettings | None:
        return await self.session.get(TenantSettings, tenant_id)

    async def save_settings(
        self, tenant_id: str, version: int, values: dict[str, Any]
    ) -> TenantSettings | None:
        """The first settings of the tenant (``version`` 0) or a change of those at
        ``version``; None when another change got there first."""
        stmt: Any
        if version == 0:
            stmt = (
                insert(TenantSettings)
                .values(tenant_id=tenant_id, version=1, **values)
                .on_conflict_do_nothing(index_elements=["tenant_id"])
            )
        else:
            stmt = (
                update(TenantSettings)
                .where(TenantSettings.tenant_id == tenant_id, TenantSettings.version == version)
                .values(**values, version=TenantSettings.version + 1, updated_at=func.now())
            )
        result = await self.session.scalars(
            stmt.returning(TenantSettings), execution_options={"populate_existing": True}
        )
        return result.one_or_none()

    async def upsert_rates(self, tenant_id: str, rows: list[dict[str, Any]]) -> list[FxRate]:
        """A rate re-posted for the same pair and effective time replaces the earlier value
        (a correction); rates are otherwise append-only, so history stays reproducible."""
        stmt = insert(FxRate).values(
            [{"id": uuid.uuid4(), "tenant_id": tenant_id, **row} for row in rows]
        )
        upsert = stmt.on_conflict_do_update(
            index_elements=["tenant_id", "source", "target", "effective_at"],
            set_={"rate": stmt.excluded.rate, "created_by": stmt.excluded.created_by},
        ).returning(FxRate)
        return list((await self.session.scalars(upsert)).all())

    async def all_rates(self, tenant_id: str) -> list[FxRate]:
        stmt = select(FxRate).where(FxRate.tenant_id == tenant_id).order_by(FxRate.effective_at)
        return list((await self.session.scalars(stmt)).all())

    async def list_rates(
        self, tenant_id: str, params: PageParams
    ) -> tuple[list[FxRate], str | None]:
        return await paginate(
            self.session, select(FxRate).where(FxRate.tenant_id == tenant_id), FxRate, params
        )
