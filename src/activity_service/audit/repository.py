from __future__ import annotations

import builtins
import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from activity_service.audit.models import ActivityAudit
from service_kit.pagination import PageParams, paginate


class AuditRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @classmethod
    def from_session(cls, session: AsyncSession) -> AuditRepository:
        return cls(session)

    def add(self, entry: ActivityAudit) -> None:
        self.session.add(entry)

    async def list(
        self, tenant_id: str, activity_id: uuid.UUID, params: PageParams
    ) -> tuple[builtins.list[ActivityAudit], str | None]:
        stmt = select(ActivityAudit).where(
            ActivityAudit.tenant_id == tenant_id, ActivityAudit.activity_id == activity_id
        )
        return await paginate(self.session, stmt, ActivityAudit, params)
