from __future__ import annotations

from datetime import datetime

from sqlalchemy import exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from reward_service.prizes.models import Prize
from reward_service.records.models import RewardRecord


class SandboxRepository:
    """What the reward service holds of a tenant, asked when its clock is synced."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @classmethod
    def from_session(cls, session: AsyncSession) -> SandboxRepository:
        return cls(session)

    async def holds_data(self, tenant_id: str) -> bool:
        records = exists().where(RewardRecord.tenant_id == tenant_id)
        prizes = exists().where(Prize.tenant_id == tenant_id)
        return bool(await self.session.scalar(select(records | prizes)))

    async def next_lock_expiry(self, tenant_id: str, after: datetime) -> datetime | None:
        """The next lock-up of the tenant to fall due after ``after``: a record waiting
        Locked, or a reward issued at once whose lock-up is still to be checked."""
        return await self.session.scalar(
            select(func.min(RewardRecord.lock_expires_at)).where(
                RewardRecord.tenant_id == tenant_id,
                RewardRecord.lock_result.is_(None),
                RewardRecord.status.in_(("locked", "issued")),
                RewardRecord.lock_expires_at > after,
            )
        )
