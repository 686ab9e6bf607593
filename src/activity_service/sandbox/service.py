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
reward service). At each step it runs the day the daily run owes and, beside it, asks the
reward service to settle what is due (lock-ups kept → Pending/Issuing, broken → Cancelled
with the reason), then waits until the grants made have become reward records and the
settled records' moves are done (looking again each time a worker says a job ended; a step
that granted and settled nothing looks once). Derived states — an activity ending, a team
failing, a coupon expiring, a segment's refresh boundary — follow the clock where they are
read, with nothing to run.

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
from service_kit.sandbox import WorkDoneWaiter, work_owed

log = logging.getLogger(__name__)

# The longest span one advance may cover: bounded work per call.
MAX_ADVANCE = timedelta(days=400)
# How long an advance's hold on the clock outlives its request if that request dies.
LEASE_MARGIN = timedelta(seconds=60)
# Waiting for queued work: how many calm looks in a row mean done, how long to wait for a
# job's end before looking anyway (workers announce each one; a missed one costs this), and
# the least time between two looks (never more often than polling every 50 ms did).
CALM_LOOKS = 2
FALLBACK_LOOK_SECONDS = 0.5
LOOK_SPACING_SECONDS = 0.05
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
    waiter = WorkDoneWaiter(
        sandbox.redis,
        sandbox.settings.queue_prefix,
        FALLBACK_LOOK_SECONDS,
        spacing=LOOK_SPACING_SECONDS,
    )
    try:
        async with waiter:
            finished = await _walk(sandbox, tenant, claimed.now, to, deadline, lease, waiter)
    finally:
        async with sandbox.db.session() as session:
            repo = SandboxRepository.from_session(session)
            await repo.release(tenant_id, finished=finished)
            final = await repo.get(tenant_id)
    assert final is not None
    return finished, final


async def _walk(
    sandbox: Sandbox,
    tenant: TenantContext,
    now: datetime,
    to: datetime,
    deadline: float,
    lease: timedelta,
    waiter: WorkDoneWaiter,
) -> bool:
    """Step from ``now`` to ``to``: True once everything due by ``to`` is done, False when
    ``deadline`` came first (the next call resumes where the clock stands)."""
    while True:
        settled, next_lock = await _settle(sandbox, tenant, now, deadline, waiter)
        if not settled:
            return False
        if now >= to:
            return True
        step = next_step(now, to, next_daily_run(now, tenant.zone, tenant.daily_run_at), next_lock)
        async with sandbox.db.session() as session:
            await SandboxRepository.from_session(session).step(tenant.tenant_id, step, lease)
        now = step


async def _settle(
    sandbox: Sandbox,
    tenant: TenantContext,
    now: datetime,
    deadline: float,
    waiter: WorkDoneWaiter,
) -> tuple[bool, datetime | None]:
    """Everything due at ``now``, in the order real time does it: (done before
    ``deadline``, the tenant's next lock-up expiry if any)."""
    tenant_id = tenant.tenant_id
    state = SandboxClockSync(now=now)
    started = time.monotonic()
    # The other services' copies first: records created from this step's grants arrive at
    # this time, and their lock-ups start at it.
    copies = await asyncio.gather(*(_sync(sandbox, s, tenant_id, state) for s in OTHER_SERVICES))
    synced = time.monotonic()
    # The day's run and the lock-ups due now at once, as real time runs the daily tick and
    # the reconciler side by side: each lock-up due now belongs to a record that exists
    # already (the previous step ended with nothing owed, and a record made at this step
    # falls due a lock period, a day at least, later), and the run's grants become records
    # only through the queues. One wait then covers both: the new records and the settled
    # ones' moves.
    granted, settled = await asyncio.gather(
        _daily_run(sandbox, tenant, now),
        _sync(sandbox, "reward", tenant_id, state.model_copy(update={"settle": True})),
    )
    decided = time.monotonic()
    if granted == 0 and settled.settled == 0:
        # A quiet step caused no work: one look (the settling answer is the reward
        # service's, taken after it) instead of waiting for two calm ones.
        referral_owed = copies[OTHER_SERVICES.index("referral")].owed
        owed = await _owed_here(sandbox, tenant_id) + settled.owed + referral_owed
        if owed == 0:
            _log_step(tenant_id, now, started, synced, decided, granted, settled.settled)
            return True, settled.next_due
    result = await _quiet(sandbox, tenant_id, now, deadline, waiter)
    _log_step(tenant_id, now, started, synced, decided, granted, settled.settled)
    return result


def _log_step(
    tenant_id: str,
    now: datetime,
    started: float,
    synced: float,
    decided: float,
    granted: int,
    settled: int,
) -> None:
    """One line per step: where its time went (copies of the clock, the daily run with the
    settling beside it, the wait for the queued work)."""
    ended = time.monotonic()
    log.info(
        "sandbox step %s",
        now.isoformat(),
        extra={
            "fields": {
                "tenant_id": tenant_id,
                "granted": granted,
                "settled": settled,
                "sync_ms": round((synced - started) * 1000, 1),
                "decide_ms": round((decided - synced) * 1000, 1),
                "wait_ms": round((ended - decided) * 1000, 1),
            }
        },
    )


async def _daily_run(sandbox: Sandbox, tenant: TenantContext, now: datetime) -> int:
    """The run the daily tick would start at ``now`` (the day it owes), to its end: how
    many grants it made."""
    day = run_day(now, tenant.zone, tenant.daily_run_at)
    async with sandbox.db.session() as session:
        run = await EvaluationRepository.from_session(session).get_run(tenant.tenant_id, day)
    if run is not None and run.status == "done":
        return 0
    referral = ReferralLookup(sandbox.http, sandbox.settings.referral_url)
    result = await evaluation.run_daily(
        sandbox.db, tenant.tenant_id, day, FrozenClock(now), referral
    )
    granted = result.grants
    while not result.done:
        result = await evaluation.run_daily(
            sandbox.db, tenant.tenant_id, day, FrozenClock(now), referral
        )
        granted += result.grants
    return granted


async def _owed_here(sandbox: Sandbox, tenant_id: str) -> int:
    return await work_owed(
        sandbox.db, OutboxMessage, sandbox.redis, sandbox.settings.queue_prefix, tenant_id
    )


async def _quiet(
    sandbox: Sandbox,
    tenant_id: str,
    now: datetime,
    deadline: float,
    waiter: WorkDoneWaiter,
) -> tuple[bool, datetime | None]:
    """Wait until no service owes the tenant any queued work (the workers' relays and jobs
    carry it): (False when ``deadline`` passed first, the next lock-up expiry the reward
    service saw at the last look). A look follows each job's end anywhere (the workers say
    so on the work-done channel), or the fallback interval if none is heard."""
    calm = 0
    state = SandboxClockSync(now=now)
    next_due: datetime | None = None
    while calm < CALM_LOOKS:
        owed = await _owed_here(sandbox, tenant_id)
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
        await waiter.wait()
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
