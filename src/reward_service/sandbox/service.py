"""A sandbox tenant's clock as the reward service keeps it, and the reward work falling due
as it advances: lock-ups settled at expiry (SPEC §3.3), automatic records submitted and
stuck issuance re-driven, exactly as the reconciler does on the system clock."""

from __future__ import annotations

from redis.asyncio import Redis

from contracts.payloads import SandboxClockState, SandboxClockSync
from reward_service.config import RewardSettings
from reward_service.db import OutboxMessage, SandboxClock
from reward_service.records.reconciler import reconcile_once
from reward_service.sandbox.repository import SandboxRepository
from service_kit.db import Database
from service_kit.errors import Conflict, NotFound
from service_kit.http import ServiceClient
from service_kit.sandbox import SandboxClockRepository, work_owed


async def sync(
    db: Database,
    http: ServiceClient,
    redis: Redis,
    settings: RewardSettings,
    tenant_id: str,
    body: SandboxClockSync,
) -> SandboxClockState:
    async with db.session() as session:
        clocks = SandboxClockRepository(session, SandboxClock)
        clock = await clocks.get(tenant_id)
        if clock is None:
            if not body.create:
                raise NotFound("This tenant is not a sandbox.", code="not_sandbox")
            if await SandboxRepository.from_session(session).holds_data(tenant_id):
                raise Conflict(
                    "The tenant already has prizes or reward records; only a new tenant can "
                    "become a sandbox.",
                    code="tenant_not_empty",
                )
        if clock is None or clock.now < body.now:  # a look at the same time writes nothing
            clock = await clocks.copy(tenant_id, body.now)
        now = clock.now
    settled = 0
    if body.settle:
        # Outside the copy's transaction: the pass opens its own, and asks the activity
        # service about lock-ups over HTTP with none held. Everything due at this time, also
        # past one pass's batch (a deferred lock-up is not due again until its recheck
        # interval, so this ends).
        while True:
            report = await reconcile_once(db, http, settings, now, (tenant_id, ()))
            settled += report.redriven + report.submitted + report.locks_due
            if report.locks_due < settings.reconcile_batch_size:
                break
    async with db.session() as session:
        next_due = await SandboxRepository.from_session(session).next_lock_expiry(tenant_id, now)
    owed = await work_owed(db, OutboxMessage, redis, settings.queue_prefix, tenant_id)
    return SandboxClockState(
        tenant_id=tenant_id, now=now, owed=owed, next_due=next_due, settled=settled
    )
