"""Sandbox tenants (SPEC §6): a tenant whose clock stands still until an operator advances
it, and the advance that does, in time order, everything real time would have done.

How a production tenant can never be a sandbox:
- only a deployment started with ``SANDBOX_ENABLED`` accepts sandboxes at all (a production
  deployment does not; its requests and jobs never even look for a sandbox clock);
- a tenant becomes a sandbox only when it is created as one: a tenant that already has
  activities, events or segments here, bindings in the referral service, or prizes or
  records in the reward service is refused (``tenant_not_empty``); nothing turns a sandbox
  back into a normal tenant or the reverse.

The activity service owns the clock; the referral and reward services keep a copy, pushed to
them before anything due at the new time is done. An advance walks from the clock's time
to the target in *steps*, each the next instant something falls due: the tenant's daily run
time (each local day's run and T+1 settlement) or the next lock-up expiry (asked of the
reward service). At each step it runs the day the daily run owes, asks the reward service to
settle what is due (lock-ups kept → Pending/Issuing, broken → Cancelled with the reason),
and waits until the grants made have become reward records and the settled records' moves
are done. Derived states — an activity ending, a team failing, a coupon expiring, a
segment's refresh boundary — follow the clock where they are read, with nothing to run.

An advance is idempotent and resumable: each step's effects are keyed (daily runs, grant
keys, record moves by compare-and-set), so a repeated call, or one that continues an advance
that ran out of time, does nothing twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from redis.asyncio import Redis

from activity_service.config import ActivitySettings
from activity_service.db import OutboxMessage, SandboxClock
from activity_service.evaluation import service as evaluation
from activity_service.evaluation.engine import run_day
from activity_service.evaluation.referral_client import ReferralLookup
from activity_service.evaluation.repository import EvaluationRepository
from activity_service.sandbox.repository import SandboxRepository
from activity_service.sandbox.rules import next_daily_run, next_step
from activity_service.sandbox.schemas import ClockStatus, SandboxClockRead
from activity_service.tenants.service import TenantContext, tenant_context
from contracts.payloads import SandboxClockState, SandboxClockSync
from service_kit.clock import FrozenClock
from service_kit.db import Database
from service_kit.errors import Conflict, NotFound, ProblemError, Unprocessable, UpstreamUnavailable
from service_kit.http import ServiceClient
from service_kit.sandbox import work_owed

log = logging.getLogger(__name__)

# The longest span one advance may cover: bounded work per call.
MAX_ADVANCE = timedelta(days=400)
# How long an advance's hold on the clock outlives its request if that request dies.
LEASE_MARGIN = timedelta(seconds=60)
# Waiting for queued work: how often to look, and how many calm looks in a row mean done.
POLL_SECONDS = 0.05
CALM_LOOKS = 2
# Calls to the other services' sandbox endpoint (settling a step's lock-ups may take long).
SYNC_TIMEOUT_SECONDS = 60.0
# The services keeping a copy of the clock.
OTHER_SERVICES = ("referral", "reward")


@dataclass
class Sandbox:
    """What sandbox operations need: the service's database, Redis, client and settings."""

    db: Database
    redis: Redis
    http: ServiceClient
    settings: ActivitySettings

    def _enabled(self) -> None:
        if not self.settings.sandbox_enabled:
            raise NotFound("This deployment has no sandbox tenants.", code="sandbox_disabled")


def to_read(clock: SandboxClock) -> SandboxClockRead:
    return SandboxClockRead(
        tenant_id=clock.tenant_id,
        now=clock.now,
        status=ClockStatus.advancing if clock.target is not None else ClockStatus.idle,
        advancing_to=clock.target,
        created_at=clock.created_at,
    )


async def create(
    sandbox: Sandbox, tenant_id: str, starts_at: datetime
) -> tuple[bool, SandboxClock]:
    """Make a new tenant a sandbox whose clock starts at ``starts_at``; (created, clock).
    Creating it again returns the clock as it is."""
    sandbox._enabled()
    async with sandbox.db.session() as session:
        repo = SandboxRepository.from_session(session)
        existing = await repo.get(tenant_id)
        if existing is not None:
            return False, existing
        if await repo.holds_data(tenant_id):
            raise _not_empty("activities, events or segments")
    # The other services first: each refuses a tenant it holds data of, and only once both
    # agreed does the tenant become a sandbox here, where advances start.
    for service in ("referral", "reward"):
        await _sync(sandbox, service, tenant_id, SandboxClockSync(now=starts_at, create=True))
    async with sandbox.db.session() as session:
        repo = SandboxRepository.from_session(session)
        created = await repo.create(tenant_id, starts_at)
        clock = created or await repo.get(tenant_id)
        assert clock is not None
    return created is not None, clock


async def read(sandbox: Sandbox, tenant_id: str) -> SandboxClock:
    sandbox._enabled()
    async with sandbox.db.session() as session:
        clock = await SandboxRepository.from_session(session).get(tenant_id)
    if clock is None:
        raise NotFound("This tenant is not a sandbox.", code="not_sandbox")
    return clock


async def advance(
    sandbox: Sandbox, tenant_id: str, to: datetime, wait_seconds: float
) -> tuple[bool, SandboxClock]:
    """Advance the tenant's clock to ``to``, doing everything due on the way; (finished,
    clock). Not finished when its effects took longer than ``wait_seconds``: the clock
    stands where the work got to, and the same call continues."""
    clock = await read(sandbox, tenant_id)
    if to < clock.now:
        raise Conflict(
            f"The clock is at {clock.now.isoformat()}; it never goes backwards.",
            code="clock_backwards",
        )
    if to - clock.now > MAX_ADVANCE:
        raise Unprocessable(
            f"One advance covers at most {MAX_ADVANCE.days} days.", code="advance_too_far"
        )
    lease = timedelta(seconds=wait_seconds) + LEASE_MARGIN
    async with sandbox.db.session() as session:
        claimed = await SandboxRepository.from_session(session).claim(tenant_id, to, lease)
        tenant = await tenant_context(session, tenant_id)
    if claimed is None:
        raise Conflict(
            "Another advance of this clock is under way; poll GET /v1/sandbox/clock.",
            code="advance_in_progress",
        )
    deadline = time.monotonic() + wait_seconds
    finished = False
    try:
        now = claimed.now
        while True:
            settled, next_lock = await _settle(sandbox, tenant, now, deadline)
            if not settled:
                break  # out of time: the next call resumes at ``now``
            if now >= to:
                finished = True
                break
            step = next_step(
                now, to, next_daily_run(now, tenant.zone, tenant.daily_run_at), next_lock
            )
            async with sandbox.db.session() as session:
                await SandboxRepository.from_session(session).step(tenant_id, step, lease)
            now = step
    finally:
        async with sandbox.db.session() as session:
            repo = SandboxRepository.from_session(session)
            await repo.release(tenant_id, finished=finished)
            final = await repo.get(tenant_id)
    assert final is not None
    return finished, final


async def _settle(
    sandbox: Sandbox, tenant: TenantContext, now: datetime, deadline: float
) -> tuple[bool, datetime | None]:
    """Everything due at ``now``, in the order real time does it: (done before
    ``deadline``, the tenant's next lock-up expiry if any)."""
    tenant_id = tenant.tenant_id
    state = SandboxClockSync(now=now)
    # The other services' copies first: records created from this step's grants arrive at
    # this time, and their lock-ups start at it.
    await asyncio.gather(*(_sync(sandbox, s, tenant_id, state) for s in OTHER_SERVICES))
    await _daily_run(sandbox, tenant, now)
    # The lock-ups due now are settled without waiting for this step's grants to become
    # records: each belongs to a record that exists already (the previous step ended with
    # nothing owed, and a record made at this step falls due a lock period, a day at least,
    # later). One wait then covers both: the new records and the settled ones' moves.
    await _sync(sandbox, "reward", tenant_id, state.model_copy(update={"settle": True}))
    return await _quiet(sandbox, tenant_id, now, deadline)


async def _daily_run(sandbox: Sandbox, tenant: TenantContext, now: datetime) -> None:
    """The run the daily tick would start at ``now`` (the day it owes), to its end."""
    day = run_day(now, tenant.zone, tenant.daily_run_at)
    async with sandbox.db.session() as session:
        run = await EvaluationRepository.from_session(session).get_run(tenant.tenant_id, day)
    if run is not None and run.status == "done":
        return
    referral = ReferralLookup(sandbox.http, sandbox.settings.referral_url)
    result = await evaluation.run_daily(
        sandbox.db, tenant.tenant_id, day, FrozenClock(now), referral
    )
    while not result.done:
        result = await evaluation.run_daily(
            sandbox.db, tenant.tenant_id, day, FrozenClock(now), referral
        )


async def _quiet(
    sandbox: Sandbox, tenant_id: str, now: datetime, deadline: float
) -> tuple[bool, datetime | None]:
    """Wait until no service owes the tenant any queued work (the workers' relays and jobs
    carry it): (False when ``deadline`` passed first, the next lock-up expiry the reward
    service saw at the last look)."""
    calm = 0
    state = SandboxClockSync(now=now)
    next_due: datetime | None = None
    while calm < CALM_LOOKS:
        owed = await work_owed(
            sandbox.db, OutboxMessage, sandbox.redis, sandbox.settings.queue_prefix, tenant_id
        )
        if not owed:  # still busy here: the others are asked once this is done
            answers = await asyncio.gather(
                *(_sync(sandbox, s, tenant_id, state) for s in OTHER_SERVICES)
            )
            owed = sum(answer.owed for answer in answers)
            next_due = answers[OTHER_SERVICES.index("reward")].next_due
        if owed == 0:
            calm += 1
            continue
        calm = 0
        if time.monotonic() > deadline:
            return False, None
        await asyncio.sleep(POLL_SECONDS)
    return True, next_due


async def _sync(
    sandbox: Sandbox, service: str, tenant_id: str, body: SandboxClockSync
) -> SandboxClockState:
    base = {"referral": sandbox.settings.referral_url, "reward": sandbox.settings.reward_url}
    response = await sandbox.http.put(
        base[service],
        "/v1/sandbox/clock",
        tenant_id=tenant_id,
        json=body.model_dump(mode="json"),
        timeout=SYNC_TIMEOUT_SECONDS,
    )
    if response.status_code == 409:
        raise _not_empty(f"data in the {service} service")
    if response.status_code != 200:
        log.warning("%s sandbox clock sync answered %s", service, response.status_code)
        raise UpstreamUnavailable(f"The {service} service could not take the sandbox clock.")
    return SandboxClockState.model_validate(response.json())


def _not_empty(what: str) -> ProblemError:
    return Conflict(
        f"The tenant already has {what}; only a new tenant can become a sandbox.",
        code="tenant_not_empty",
    )
