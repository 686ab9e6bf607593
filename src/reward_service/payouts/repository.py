from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import case, select, update
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

    async def put_endpoint(
        self, tenant_id: str, url: str, signing_secret: str | None, actor: str, at: datetime
    ) -> None:
        """``signing_secret`` None keeps the one in place."""
        values = {"url": url, "updated_by": actor, "updated_at": at}
        if signing_secret is not None:
            values["signing_secret"] = signing_secret
        await self.session.execute(
            insert(PayoutEndpoint)
            .values(tenant_id=tenant_id, **values)
            .on_conflict_do_update(index_elements=["tenant_id"], set_=values)
        )

    async def note_request(self, values: dict[str, Any], at: datetime) -> CashPayout:
        """One payout row per record; every attempt bumps ``attempts``. The terms of the
        first request (amount, currency, cash system) stay pinned: a retry must ask for the
        very payment the key may already stand for. Only after a definite refusal — when no
        payment exists — does a new attempt take the current terms."""
        new = insert(CashPayout).values(**values, attempts=1, created_at=at, updated_at=at)
        refused = CashPayout.status == "refused"
        stmt = new.on_conflict_do_update(
            index_elements=["record_id"],
            set_={
                "attempts": CashPayout.attempts + 1,
                "amount": case((refused, new.excluded.amount), else_=CashPayout.amount),
                "currency": case((refused, new.excluded.currency), else_=CashPayout.currency),
                "endpoint_url": case(
                    (refused, new.excluded.endpoint_url), else_=CashPayout.endpoint_url
                ),
                "status": case((refused, "requested"), else_=CashPayout.status),
                "updated_at": at,
            },
        ).returning(CashPayout)
        result = await self.session.scalars(stmt.execution_options(populate_existing=True))
        return result.one()

    async def note_outcome(self, record_id: uuid.UUID, values: dict[str, Any]) -> None:
        await self.session.execute(
            update(CashPayout).where(CashPayout.record_id == record_id).values(**values)
        )

    async def get_by_record(self, record_id: uuid.UUID) -> CashPayout | None:
        return await self.session.scalar(
            select(CashPayout).where(CashPayout.record_id == record_id)
        )
