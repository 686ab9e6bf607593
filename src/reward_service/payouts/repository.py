from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from reward_service.payouts.models import CashPayout, PayoutEndpoint


class PayoutRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @classmethod
    def from_session(cls, session: AsyncSession) -> PayoutRepository:
        return cls(session)

    async def endpoint(self, tenant_id: str) -> PayoutEndpoint | None:
        return await self.session.get(PayoutEndpoint, tenant_id)

    async def put_endpoint(self, tenant_id: str, url: str, actor: str, at: datetime) -> None:
        await self.session.execute(
            insert(PayoutEndpoint)
            .values(tenant_id=tenant_id, url=url, updated_by=actor, updated_at=at)
            .on_conflict_do_update(
                index_elements=["tenant_id"],
                set_={"url": url, "updated_by": actor, "updated_at": at},
            )
        )

    async def note_request(self, values: dict[str, Any], at: datetime) -> None:
        """One payout row per record; every attempt bumps ``attempts``."""
        stmt = insert(CashPayout).values(**values, attempts=1, created_at=at, updated_at=at)
        stmt = stmt.on_conflict_do_update(
            index_elements=["record_id"],
            set_={
                "attempts": CashPayout.attempts + 1,
                "endpoint_url": stmt.excluded.endpoint_url,
                "updated_at": at,
            },
        )
        await self.session.execute(stmt)

    async def note_outcome(self, record_id: uuid.UUID, values: dict[str, Any]) -> None:
        await self.session.execute(
            update(CashPayout).where(CashPayout.record_id == record_id).values(**values)
        )

    async def get_by_record(self, record_id: uuid.UUID) -> CashPayout | None:
        return await self.session.scalar(
            select(CashPayout).where(CashPayout.record_id == record_id)
        )
