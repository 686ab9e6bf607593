"""Reward jobs: records from grants, issuance, and the reconciler."""

from __future__ import annotations

import time
import uuid
from typing import Any

from arq import Retry
from sqlalchemy.ext.asyncio import AsyncSession

from contracts import jobs
from contracts.payloads import Grant, grants_of_message
from reward_service.payouts.service import issue_cash
from reward_service.records import service
from reward_service.records.fulfilment import TransientFulfilmentError
from reward_service.records.reconciler import reconcile_once
from reward_service.records.repository import RecordRepository
from reward_service.records.state import RecordStatus
from service_kit.correlation import message_context
from service_kit.worker import as_list, delivery_budget, job, message_job, stop_delivery

MAX_RETRY_DELAY_SECONDS = 30.0


def retry_delay(base_seconds: float, job_try: int) -> float:
    """Backoff of a transient issuance failure: base, 2×base, 4×base, … capped at 30 s."""
    return min(base_seconds * 2 ** max(0, job_try - 1), MAX_RETRY_DELAY_SECONDS)


async def _not_recorded(
    ctx: dict[str, Any], session: AsyncSession, payloads: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The grants of a delivery without a record yet: a try after one that stopped at its
    time budget skips the recorded ones in one query. A delivery's first try does not ask:
    its grants are new but for a delivery sent again (after a lost or failed job), whose
    recorded grants the insert skips by the unique key all the same, and the question
    costs a probe per grant (and more, while the table has no statistics: see
    ``recorded_grants``)."""
    if ctx.get("job_try", 1) <= 1:
        return payloads
    keys = [(p.get("tenant_id"), p.get("grant_key")) for p in payloads]
    recorded = await service.recorded_grants(
        session, [(t, k) for t, k in keys if isinstance(t, str) and isinstance(k, str)]
    )
    return [p for p, key in zip(payloads, keys, strict=True) if key not in recorded]


# Where a unit of work collects the grants of its messages (recorded at its end).
_GRANTS = "grants_to_record"
# Grants recorded per transaction: the records are written by ``finish``, after the last
# message, so the delivery's time budget is checked between transactions of this size; a
# hundred records written at once on starved cores outlasted the job timeout, and each
# timeout sent the whole delivery again.
GRANTS_PER_TRANSACTION = 25


async def _record_grants(ctx: dict[str, Any], session: AsyncSession) -> None:
    await service.create_from_grants(session, session.info.pop(_GRANTS, []))


@message_job(
    jobs.REWARD_CREATE_FROM_GRANT,
    "reward",
    pending=_not_recorded,
    finish=_record_grants,
    per_transaction=GRANTS_PER_TRANSACTION,
    # a daily run announces a chunk's grants of an activity in one message
    unpack=grants_of_message,
)
async def create_from_grant(
    ctx: dict[str, Any], session: AsyncSession, payload: dict[str, Any]
) -> None:
    """Collected, and the delivery's records inserted in one statement (``finish``)."""
    grant = Grant.model_validate(payload)
    # The reward arrives at the tenant's time: a sandbox's lock-up starts on its own clock.
    now = await ctx["clocks"].now(grant.tenant_id, session)
    session.info.setdefault(_GRANTS, []).append((grant, now))


async def issue_record(ctx: dict[str, Any], record_id: uuid.UUID) -> str | None:
    """Route one record to its fulfilment adapter; None when there was nothing to do."""
    async with ctx["db"].session() as session:
        record = await RecordRepository.from_session(session).get_by_id(record_id)
        if record is None or record.status != RecordStatus.issuing.value:
            return None
        prize_type, tenant_id = record.prize_type, record.tenant_id
    clock = await ctx["clocks"].for_tenant(tenant_id)
    if prize_type == "cash":
        cash_record = await issue_cash(ctx["db"], ctx["http"], ctx["settings"], record_id, clock)
        return cash_record.status if cash_record else None
    async with ctx["db"].session() as session:
        issued = await service.issue(session, record_id, clock.now())
    return issued.status if issued else None


@job(jobs.REWARD_ISSUE, "reward")
async def issue(ctx: dict[str, Any], payloads: dict[str, Any] | list[dict[str, Any]]) -> int:
    """Issue the records of one delivery one after another: cash calls another system with
    no transaction open, so each record is its own unit of work. A re-run after a transient
    failure finds the records already issued and leaves them alone."""
    items = as_list(payloads)
    deadline = time.monotonic() + delivery_budget(ctx)
    try:
        issued = 0
        for index, payload in enumerate(items):
            if issued and time.monotonic() >= deadline:
                # The next try finds the records issued so far already issued (one read
                # each) and goes on with the rest, before the job timeout cuts a payment.
                stop_delivery(jobs.REWARD_ISSUE, index, len(items))
            with message_context(payload):
                if await issue_record(ctx, uuid.UUID(payload["record_id"])) is not None:
                    issued += 1
        return issued
    except TransientFulfilmentError as exc:
        # Backoff doubling per try; after the last try the record is still Issuing and the
        # reconciler re-drives it, so a long outage delays the payment but never loses it.
        delay = retry_delay(ctx["settings"].cash_retry_base_seconds, ctx.get("job_try", 1))
        raise Retry(defer=delay) from exc


@job(jobs.REWARD_RECONCILE, "reward")
async def reconcile(ctx: dict[str, Any]) -> dict[str, int]:
    # Sandbox tenants' lock-ups fall due on their own clocks, settled as those advance.
    sandboxes = await ctx["clocks"].sandbox_tenants()
    report = await reconcile_once(
        ctx["db"], ctx["http"], ctx["settings"], ctx["clock"].now(), (None, sandboxes)
    )
    return {
        "redriven": report.redriven,
        "submitted": report.submitted,
        "released": report.released,
        "broken": report.broken,
        "lock_checks_deferred": report.lock_checks_deferred,
    }


FUNCTIONS = [create_from_grant, issue]
