from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from activity_service.activities.models import Activity
from activity_service.db import SandboxClock
from activity_service.events.models import Event
from activity_service.segments.models import Segment
from service_kit.sandbox import SandboxClockRepository


class SandboxRepository(SandboxClockRepository):
    """The activity service's sandbox clocks (it owns them) and the advance's lease."""

    def __init__(self, session: AsyncSession) -> None:
        super().__init__(session, SandboxClock)

    @classmethod
    def from_session(cls, session: AsyncSession) -> SandboxRepository:
        return cls(session)

    async def holds_data(self, tenant_id: str) -> bool:
        found = (
            exists().where(Activity.tenant_id == tenant_id)
            | exists().where(Event.tenant_id == tenant_id)
            | exists().where(Segment.tenant_id == tenant_id)
        )
        return bool(await self.session.scalar(select(found)))

    async def claim(
        self, tenant_id: str, target: datetime, lease: timedelta
    ) -> SandboxClock | None:
        """Take the tenant's advance towards ``target`` unless another request holds it.
        The lease is on the database's clock (the real one), so a request that died frees
        the clock when its lease runs out."""
        stmt = (
            update(SandboxClock)
            .where(
                SandboxClock.tenant_id == tenant_id,
                SandboxClock.now <= target,
                or_(
                    SandboxClock.lease_until.is_(None),
                    SandboxClock.lease_until < func.clock_timestamp(),
                ),
            )
            .values(
                target=target,
                lease_until=func.clock_timestamp() + lease,
                updated_at=func.now(),
            )
            .returning(SandboxClock)
            .execution_options(populate_existing=True)
        )
        return (await self.session.scalars(stmt)).one_or_none()

    async def step(self, tenant_id: str, at: datetime, lease: timedelta) -> None:
        """Move the clock forward to ``at`` and renew the lease."""
        await self.session.execute(
            update(SandboxClock)
            .where(SandboxClock.tenant_id == tenant_id)
            .values(
                now=func.greatest(SandboxClock.now, at),
                lease_until=func.clock_timestamp() + lease,
                updated_at=func.now(),
            )
        )

    async def release(self, tenant_id: str, *, finished: bool) -> None:
        """Give the lease back; a finished advance also forgets its target."""
        values: dict[str, object] = {"lease_until": None, "updated_at": func.now()}
        if finished:
            values["target"] = None
        await self.session.execute(
            update(SandboxClock).where(SandboxClock.tenant_id == tenant_id).values(**values)
        )
