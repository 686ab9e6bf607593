from __future__ import annotations

from typing import Any

from sqlalchemy import func, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from activity_service.evaluation.models import Grant


class GrantRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @classmethod
    def from_session(cls, session: AsyncSession) -> GrantRepository:
        return cls(session)

    async def insert_if_new(self, values: dict[str, Any]) -> Grant | None:
        stmt = (
            insert(Grant)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["tenant_id", "grant_key"])
            .returning(Grant)
        )
        return (await self.session.scalars(stmt)).one_or_none()

    async def set_record_status(
        self, tenant_id: str, grant_key: str, status: str, record_number: str
    ) -> None:
        await self.session.execute(
            update(Grant)
            .where(Grant.tenant_id == tenant_id, Grant.grant_key == grant_key)
            .values(record_status=status, record_number=record_number, updated_at=func.now())
        )
