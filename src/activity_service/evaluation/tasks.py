"""Activity jobs: evaluation of stored events, the daily run, and the grant ledger
following records."""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

from arq import Retry
from arq.cron import cron
from sqlalchemy.ext.asyncio import AsyncSession

from activity_service.evaluation import service
from activity_service.evaluation.engine import run_day
from activity_service.evaluation.referral_client import ReferralLookup, ReferralUnavailable
from activity_service.evaluation.repository import EvaluationRepository
from activity_service.tenants.service import tenant_context
from contracts import jobs
from contracts.payloads import BindingChanged, RecordStatusChanged
from service_kit.outbox.bundles import items_of
from service_kit.queue import enqueue
from service_kit.worker import job, message_job

log = logging.getLogger(__name__)

ACTIVITY_DAILY_RUN = "activity.daily_run"
ACTIVITY_DAILY_TICK = "activity.daily_tick"
# A daily run job stops after this long and continues in a new job, far below the job
# timeout, so a big tenant never gets its run killed and restarted from its last save.
DAILY_RUN_BUDGET_SECONDS = 12.0


def _referral(ctx: dict[str, Any]) -> ReferralLookup:
    return ReferralLookup(ctx["http"], ctx["settings"].referral_url)


def _retry_delay(ctx: dict[str, Any]) -> int:
    """Back off 1, 2, 4 … 60 s between tries of a transient failure."""
    return int(min(60, 2 ** max(0, ctx.get("job_try", 1) - 1)))


async def _read_events(
    ctx: dict[str, Any], session: AsyncSession, payloads: list[dict[str, Any]]
) -> None:
    await service.prefetch_events(session, [(p["tenant_id"], p["event_id"]) for p in payloads])


async def _write_deferred(ctx: dict[str, Any], session: AsyncSession) -> None:
    await service.write_deferred(session)


@message_job(
    jobs.ACTIVITY_EVALUATE_EVENT,
    "activity",
    prepare=_read_events,
    finish=_write_deferred,
    unpack=items_of,
)
async def evaluate_event(
    ctx: dict[str, Any], session: AsyncSession, payload: dict[str, Any]
) -> int:
    try:
        grants = await service.evaluate_event(
            session,
            payload["tenant_id"],
            payload["event_id"],
            now=await ctx["clocks"].now(payload["tenant_id"], session),
            referral=_referral(ctx),
            defer_writes=True,
        )
    except ReferralUnavailable as exc:
        # Transient: the delivery rolls back and is tried again later.
        log.warning("referral_service unavailable, retrying: %s", exc)
        raise Retry(defer=_retry_delay(ctx)) from exc
    return len(grants)


@job(ACTIVITY_DAILY_RUN, "activity")
async def daily_run(ctx: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
    tenant_id, day = payload["tenant_id"], date.fromisoformat(payload["day"])
    part = int(payload.get("part", 0))
    try:
        result = await service.run_daily(
            ctx["db"],
            tenant_id,
            day,
            ctx["clock"],
            _referral(ctx),
            budget_seconds=DAILY_RUN_BUDGET_SECONDS,
        )
    except ReferralUnavailable as exc:
        log.warning("referral_service unavailable during the daily run: %s", exc)
        raise Retry(defer=_retry_delay(ctx)) from exc
    if not result.done:
        await enqueue_daily_run(ctx, tenant_id, day.isoformat(), part + 1)
    return {"day": day.isoformat(), "done": result.done, "grants": result.grants}


async def enqueue_daily_run(ctx: dict[str, Any], tenant_id: str, day: str, part: int = 0) -> None:
    await enqueue(
        ctx["redis"],
        ctx["settings"].queue_prefix,
        "activity",
        ACTIVITY_DAILY_RUN,
        {"tenant_id": tenant_id, "day": day, "part": part},
        f"daily:{tenant_id}:{day}:{part}",
    )


async def daily_tick(ctx: dict[str, Any]) -> int:
    """Cron: for each tenant with published activities whose local run time has passed,
    start the run of the day it owes unless that run is done. Runs every few minutes, so a
    worker down at the run time catches up when it is back. Sandbox tenants' days are run
    by their clock's advances, on their own time."""
    now = ctx["clock"].now()
    started = 0
    sandboxes = await ctx["clocks"].sandbox_tenants()
    async with ctx["db"].session() as session:
        repo = EvaluationRepository.from_session(session)
        for tenant_id in await repo.tenants_with_published():
            if tenant_id in sandboxes:
                continue
            tenant = await tenant_context(session, tenant_id)
            day = run_day(now, tenant.zone, tenant.daily_run_at)
            run = await repo.get_run(tenant_id, day)
            if run is not None and run.status == "done":
                continue
            await enqueue_daily_run(ctx, tenant_id, day.isoformat())
            started += 1
    return started


# Where a unit of work collects its record status messages (applied at its end).
_STATUS_CHANGES = "record_status_changes"


async def _follow_statuses(ctx: dict[str, Any], session: AsyncSession) -> None:
    await service.follow_record_statuses(session, session.info.pop(_STATUS_CHANGES, []))


# Both read a bundle of their messages as its items (``service_kit.outbox.bundles``), so a
# producer writing many in one transaction may send them as one message.
@message_job(
    jobs.ACTIVITY_RECORD_STATUS_CHANGED, "activity", finish=_follow_statuses, unpack=items_of
)
async def record_status_changed(
    ctx: dict[str, Any], session: AsyncSession, payload: dict[str, Any]
) -> None:
    """Collected, and followed in one statement for the whole delivery (``finish``)."""
    change = RecordStatusChanged.model_validate(payload)
    session.info.setdefault(_STATUS_CHANGES, []).append(change)


@message_job(jobs.ACTIVITY_BINDING_CHANGED, "activity", finish=_write_deferred, unpack=items_of)
async def binding_changed(
    ctx: dict[str, Any], session: AsyncSession, payload: dict[str, Any]
) -> int:
    """A binding may land after the invitee's task event was evaluated (registration binds
    in referral_service's own job): decide the invitee's real-time referral rules again."""
    fact = BindingChanged.model_validate(payload)
    try:
        grants = await service.evaluate_invitee(
            session,
            fact.tenant_id,
            fact.invitee_id,
            now=await ctx["clocks"].now(fact.tenant_id, session),
            referral=_referral(ctx),
            defer_writes=True,
        )
    except ReferralUnavailable as exc:
        log.warning("referral_service unavailable, retrying: %s", exc)
        raise Retry(defer=_retry_delay(ctx)) from exc
    return len(grants)


FUNCTIONS = [evaluate_event, daily_run, record_status_changed, binding_changed]
CRON_JOBS = [
    cron(
        daily_tick,
        name=ACTIVITY_DAILY_TICK,
        minute={0, 10, 20, 30, 40, 50},
        run_at_startup=False,
        unique=True,
        timeout=20,
    )
]
