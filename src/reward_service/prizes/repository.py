from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from reward_service.center.models import ManualIssuance
from reward_service.prizes.models import Prize
from reward_service.records.models import RewardRecord
from service_kit.pagination import PageParams, paginate


class PrizeRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @classmethod
    def from_session(cls, session: AsyncSession) -> PrizeRepository:
        return cls(session)

    def add(self, prize: Prize) -> Prize:
        self.session.add(prize)
        return prize

    async def get(self, tenant_id: str, prize_id: uuid.UUID) -> Prize | None:
        return await self.session.scalar(
            select(Prize).where(Prize.tenant_id == tenant_id, Prize.id == prize_id)
        )

    async def lock(self, tenant_id: str, prize_id: uuid.UUID) -> Prize | None:
        return await self.session.scalar(
            select(Prize)
            .where(Prize.tenant_id == tenant_id, Prize.id == prize_id)
            .with_for_update()
        )

    async def used_by(self, tenant_id: str, prize_id: uuid.UUID) -> list[str]:
        """What in this service names the prize: reward records (whatever their state) and
        reward-center issuances. Each is a probe that stops at the first row."""
        records = (
            select(RewardRecord.id)
            .where(RewardRecord.tenant_id == tenant_id, RewardRecord.prize_id == prize_id)
            .limit(1)
        )
        issuances = (
            select(ManualIssuance.id)
            .where(ManualIssuance.tenant_id == tenant_id, ManualIssuance.prize_id == prize_id)
            .limit(1)
        )
        found = []
        if await self.session.scalar(records) is not None:
            found.append("reward_records")
        if await self.session.scalar(issuances) is not None:
            found.append("reward_center_issuances")
        return found

    async def delete(self, prize_id: uuid.UUID) -> None:
        await self.session.execute(delete(Prize).where(Prize.id == prize_id))

    async def list(
        self, tenant_id: str, params: PageParams, type_: str | None = None
    ) -> tuple[list[Prize], str | None]:
        stmt = select(Prize).where(Prize.tenant_id == tenant_id)
        if type_:
            stmt = stmt.where(Prize.type == type_)
        return await paginate(self.session, stmt, Prize, params)

    async def update_if_version(
        self, prize_id: uuid.UUID, version: int, values: dict[str, Any]
    ) -> int | None:
        """Apply an edit only if nobody edited the prize since ``version``; the new version,
        or None when it moved on."""
        result = await self.session.execute(
            update(Prize)
            .where(Prize.id == prize_id, Prize.version == version)
            .values(**values, version=Prize.version + 1)
            .returning(Prize.version)
            .execution_options(synchronize_session=False)
        )
        return result.scalar_one_or_none()

    async def adjust_stock(self, prize_id: uuid.UUID, delta: int, at: datetime) -> int | None:
        """Atomically add ``delta`` to the stock; None (and no change) if it would go below
        zero. One UPDATE, so it composes with concurrent issues taking items."""
        result = await self.session.execute(
            update(Prize)
            .where(Prize.id == prize_id, Prize.stock + delta >= 0)
            .values(stock=Prize.stock + delta, updated_at=at)
            .returning(Prize.stock)
            .execution_options(synchronize_session=False)
        )
        return result.scalar_one_or_none()

    async def refresh(self, prize_id: uuid.UUID) -> Prize | None:
        return await self.session.scalar(
            select(Prize).where(Prize.id == prize_id).execution_options(populate_existing=True)
        )

    async def take_one_from_stock(self, prize_id: uuid.UUID) -> bool:
        """Atomically decrement stock; False when none is left (never goes negative)."""
        result = await self.session.execute(
            update(Prize)
            .where(Prize.id == prize_id, Prize.stock > 0)
            .values(stock=Prize.stock - 1)
            .returning(Prize.id)
        )
        return result.scalar_one_or_none() is not None
