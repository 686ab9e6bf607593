from __future__ import annotations

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from referral_service.bindings.models import Binding


class SandboxRepository:
    """What the referral service holds of a tenant, asked when it becomes a sandbox."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @classmethod
    def from_session(cls, session: AsyncSession) -> SandboxRepository:
        return cls(session)

    async def holds_data(self, tenant_id: str) -> bool:
        return bool(
            await self.session.scalar(select(exists().where(Binding.tenant_id == tenant_id)))
        )
