from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from reward_service.center.models import IssuanceBatch, ManualIssuance
from reward_service.prizes.models import Prize
from reward_service.records.models import RewardRecord
from service_kit.db import any_of
from service_kit.pagination import PageParams, paginate


class CenterRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @classmethod
    def from_session(cls, session: AsyncSession) -> CenterRepository:
        return cls(session)

    async def insert_issuance(self, values: dict[str, Any]) -> ManualIssuance:
        stmt = insert(ManualIssuance).values(**values).returning(ManualIssuance)
        return (await self.session.scalars(stmt)).one()

    async def insert_issuances(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            await self.session.execute(insert(ManualIssuance), rows)

    async def insert_batch(self, values: dict[str, Any]) -> IssuanceBatch:
        stmt = insert(IssuanceBatch).values(**values).returning(IssuanceBatch)
        return (await self.session.scalars(stmt)).one()

    async def get_issuance(self, tenant_id: str, issuance_id: uuid.UUID) -> ManualIssuance | None:
        return await self.session.scalar(
            select(ManualIssuance)
            .where(ManualIssuance.tenant_id == tenant_id, ManualIssuance.id == issuance_id)
            .execution_options(populate_existing=True)
        )

    async def get_batch(self, tenant_id: str, batch_id: uuid.UUID) -> IssuanceBatch | None:
        return await self.session.scalar(
            select(IssuanceBatch)
            .where(IssuanceBatch.tenant_id == tenant_id, IssuanceBatch.id == batch_id)
            .execution_options(populate_existing=True)
        )

    async def batch_issuances(
        self, batch_id: uuid.UUID, status: str | None = None
    ) -> list[ManualIssuance]:
        stmt = select(ManualIssuance).where(ManualIssuance.batch_id == batch_id)
        if status:
            stmt = stmt.where(ManualIssuance.status == status)
        stmt = stmt.order_by(ManualIssuance.line).execution_options(populate_existing=True)
        return list((await self.session.scalars(stmt)).all())

    async def review_issuance(
        self, issuance_id: uuid.UUID, expected: str, values: dict[str, Any], at: datetime
    ) -> ManualIssuance | None:
        """Compare-and-set on the status: of two racing reviews only one finds it waiting."""
        stmt = (
            update(ManualIssuance)
            .where(ManualIssuance.id == issuance_id, ManualIssuance.status == expected)
            .values(**values, version=ManualIssuance.version + 1, updated_at=at)
            .returning(ManualIssuance)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
        return (await self.session.scalars(stmt)).one_or_none()

    async def review_batch(
        self, batch_id: uuid.UUID, expected: str, values: dict[str, Any], at: datetime
    ) -> IssuanceBatch | None:
        stmt = (
            update(IssuanceBatch)
            .where(IssuanceBatch.id == batch_id, IssuanceBatch.status == expected)
            .values(**values, version=IssuanceBatch.version + 1, updated_at=at)
            .returning(IssuanceBatch)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
        return (await self.session.scalars(stmt)).one_or_none()

    async def review_batch_issuances(
        self, batch_id: uuid.UUID, values: dict[str, Any], at: datetime
    ) -> list[ManualIssuance]:
        """Every line of the batch still awaiting review takes the batch's decision."""
        stmt = (
            update(ManualIssuance)
            .where(
                ManualIssuance.batch_id == batch_id,
                ManualIssuance.status == "awaiting_review",
            )
            .values(**values, version=ManualIssuance.version + 1, updated_at=at)
            .returning(ManualIssuance)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
        rows = list((await self.session.scalars(stmt)).all())
        return sorted(rows, key=lambda r: r.line or 0)

    async def list_issuances(
        self,
        tenant_id: str,
        params: PageParams,
        *,
        activity_code: str | None = None,
        status: str | None = None,
        user_id: str | None = None,
        batch_id: uuid.UUID | None = None,
        submitter: str | None = None,
    ) -> tuple[list[ManualIssuance], str | None]:
        stmt = select(ManualIssuance).where(ManualIssuance.tenant_id == tenant_id)
        if activity_code:
            stmt = stmt.where(ManualIssuance.activity_code == activity_code)
        if status:
            stmt = stmt.where(ManualIssuance.status == status)
        if user_id:
            stmt = stmt.where(ManualIssuance.user_id == user_id)
        if batch_id:
            stmt = stmt.where(ManualIssuance.batch_id == batch_id)
        if submitter:
            stmt = stmt.where(ManualIssuance.submitter == submitter)
        return await paginate(self.session, stmt, ManualIssuance, params)

    async def list_batches(
        self, tenant_id: str, params: PageParams, *, status: str | None = None
    ) -> tuple[list[IssuanceBatch], str | None]:
        stmt = select(IssuanceBatch).where(IssuanceBatch.tenant_id == tenant_id)
        if status:
            stmt = stmt.where(IssuanceBatch.status == status)
        return await paginate(self.session, stmt, IssuanceBatch, params)

    async def records_by_grant_keys(
        self, tenant_id: str, keys: Sequence[str]
    ) -> dict[str, RewardRecord]:
        if not keys:
            return {}
        rows = await self.session.scalars(
            select(RewardRecord).where(
                RewardRecord.tenant_id == tenant_id, any_of(RewardRecord.grant_key, keys)
            )
        )
        return {r.grant_key: r for r in rows}

    async def prizes_by_ids(
        self, tenant_id: str, ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, Prize]:
        if not ids:
            return {}
        rows = await self.session.scalars(
            select(Prize).where(Prize.tenant_id == tenant_id, any_of(Prize.id, ids))
        )
        return {p.id: p for p in rows}
