"""A sandbox tenant's clock as the referral service keeps it (binding times, node
freezes follow it through the request clock)."""

from __future__ import annotations

from redis.asyncio import Redis

from contracts.payloads import SandboxClockState, SandboxClockSync
from referral_service.config import ReferralSettings
from referral_service.db import OutboxMessage, SandboxClock
from referral_service.sandbox.repository import SandboxRepository
from service_kit.db import Database
from service_kit.errors import Conflict, NotFound
from service_kit.sandbox import SandboxClockRepository, work_owed


async def sync(
    db: Database, redis: Redis, settings: ReferralSettings, tenant_id: str, body: SandboxClockSync
) -> SandboxClockState:
    async with db.session() as session:
        clocks = SandboxClockRepository(session, SandboxClock)
        clock = await clocks.get(tenant_id)
        if clock is None:
            if not body.create:
                raise NotFound("This tenant is not a sandbox.", code="not_sandbox")
            if await SandboxRepository.from_session(session).holds_data(tenant_id):
                raise Conflict(
                    "The tenant already has referral bindings; only a new tenant can become "
                    "a sandbox.",
                    code="tenant_not_empty",
                )
        if clock is None or clock.now < body.now:  # a look at the same time writes nothing
            clock = await clocks.copy(tenant_id, body.now)
        now = clock.now
    owed = await work_owed(db, OutboxMessage, redis, settings.queue_prefix, tenant_id)
    return SandboxClockState(tenant_id=tenant_id, now=now, owed=owed)
