from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from reward_service.records.models import RecordTransition, RewardRecord, record_number_seq
from service_kit.pagination import PageParams, paginate


class RecordRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @classmethod
    def from_session(cls, session: AsyncSession) -> RecordRepository:
        return cls(session)

    async def next_number_seq(self) -> int:
        return int(await self.session.scalar(select(record_number_seq.next_value())))

    async def insert_if_new(self, values: dict[str, Any]) -> RewardRecord | None:
        """Insert unless the grant already has a record; None when it did."""
        stmt = (
            insert(RewardRecord)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["tenant_id", "grant_key"])
            .returning(RewardRecord)
        )
        return (await self.session.scalars(stmt)).one_or_none()

    async def get(self, tenant_id: str, record_id: uuid.UUID) -> RewardRecord | None:
        return await self.session.scalar(
            select(RewardRecord).where(
                RewardRecord.tenant_id == tenant_id, RewardRecord.id == record_id
            )
        )

    async def get_by_id(self, record_id: uuid.UUID) -> RewardRecord | None:
        return await self.session.get(RewardRecord, record_id)

    async def compare_and_set(
        self, record_id: uuid.UUID, expected: str, values: dict[str, Any]
    ) -> RewardRecord | None:
        """Move the record only if it is still in ``expected``: two racing moves cannot
        both win. Returns the updated row, or None when another move got there first."""
        stmt = (
            update(RewardRecord)
            .where(RewardRecord.id == record_id, RewardRecord.status == expected)
            .values(**values, version=RewardRecord.version + 1, updated_at=func.now())
            .returning(RewardRecord)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
        return (await self.session.scalars(stmt)).one_or_none()

    def add_transition(self, transition: RecordTransition) -> None:
        self.session.add(transition)

    async def transitions(self, record_id: uuid.UUID) -> list[RecordTransition]:
        stmt = (
            select(RecordTransition)
            .where(RecordTransition.record_id == record_id)
            .order_by(RecordTransition.id)
        )
        return list((await self.session.scalars(stmt)).all())

    async def list(
        self,
        tenant_id: str,
        params: PageParams,
        *,
        activity_code: str | None = None,
        status: str | None = None,
        user_id: str | None = None,
        task: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> tuple[list[RewardRecord], str | None]:
        stmt = select(RewardRecord).where(RewardRecord.tenant_id == tenant_id)
        if activity_code:
            stmt = stmt.where(RewardRecord.activity_code == activity_code)
        if status:
            stmt = stmt.where(RewardRecord.status == status)
        if user_id:
            stmt = stmt.where(RewardRecord.user_id == user_id)
        if task:
            stmt = stmt.where(RewardRecord.task == task)
        if since:
            stmt = stmt.where(RewardRecord.achieved_at >= since)
        if until:
            stmt = stmt.where(RewardRecord.achieved_at < until)
        return await paginate(self.session, stmt, RewardRecord, params)

    async def count_by_status(self, tenant_id: str, activity_code: str | None) -> dict[str, int]:
        stmt = select(RewardRecord.status, func.count()).where(RewardRecord.tenant_id == tenant_id)
        if activity_code:
            stmt = stmt.where(RewardRecord.activity_code == activity_code)
        rows = await self.session.execute(stmt.group_by(RewardRecord.status))
        return {status: int(n) for status, n in rows.all()}
