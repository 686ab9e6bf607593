from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from activity_service.activities.models import Activity
from service_kit.pagination import PageParams, paginate


class ActivityRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @classmethod
    def from_session(cls, session: AsyncSession) -> ActivityRepository:
        return cls(session)

    def add(self, activity: Activity) -> None:
        self.session.add(activity)

    async def code_taken(self, tenant_id: str, activity_code: str, business_code: str) -> bool:
        found = await self.session.scalar(
            select(func.count()).where(
                Activity.tenant_id == tenant_id,
                (Activity.activity_code == activity_code)
                | (Activity.business_code == business_code),
            )
        )
        return bool(found)

    async def get(self, tenant_id: str, activity_id: uuid.UUID) -> Activity | None:
        return await self.session.scalar(
            select(Activity).where(Activity.tenant_id == tenant_id, Activity.id == activity_id)
        )

    async def by_code(self, tenant_id: str, activity_code: str) -> Activity | None:
        return await self.session.scalar(
            select(Activity).where(
                Activity.tenant_id == tenant_id, Activity.activity_code == activity_code
            )
        )

    async def list(
        self, tenant_id: str, params: PageParams, *, kind: str | None = None
    ) -> tuple[list[Activity], str | None]:
        stmt = select(Activity).where(Activity.tenant_id == tenant_id)
        if kind:
            stmt = stmt.where(Activity.kind == kind)
        return await paginate(self.session, stmt, Activity, params)

    async def published_of_kind(self, tenant_id: str, kind: str) -> list[Activity]:
        stmt = select(Activity).where(
            Activity.tenant_id == tenant_id, Activity.kind == kind, Activity.state == "published"
        )
        return list((await self.session.scalars(stmt)).all())

    async def update_if_version(
        self, activity_id: uuid.UUID, version: int, values: dict[str, Any]
    ) -> Activity | None:
        """Optimistic concurrency: applies only if nobody changed the row since ``version``."""
        stmt = (
            update(Activity)
            .where(Activity.id == activity_id, Activity.version == version)
            .values(**values, version=Activity.version + 1, updated_at=func.now())
            .returning(Activity)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
        return (await self.session.scalars(stmt)).one_or_none()
