from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from activity_service.events.models import Event


class EventRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @classmethod
    def from_session(cls, session: AsyncSession) -> EventRepository:
        return cls(session)

    async def insert_if_new(self, values: dict[str, Any]) -> Event | None:
        stmt = (
            insert(Event)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["tenant_id", "event_id"])
            .returning(Event)
        )
        return (await self.session.scalars(stmt)).one_or_none()

    async def get(self, tenant_id: str, event_id: str) -> Event | None:
        return await self.session.scalar(
            select(Event).where(Event.tenant_id == tenant_id, Event.event_id == event_id)
        )
