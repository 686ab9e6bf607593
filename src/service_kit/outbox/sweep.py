"""Confirming: sent messages whose jobs finished, failed or were lost in Redis."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix, job_key_prefix, result_key_prefix
from arq.jobs import deserialize_result

from service_kit.db import Database
from service_kit.outbox.models import OutboxMessageMixin
from service_kit.outbox.repository import OutboxRepository
from service_kit.queue import arq_job_id
from service_kit.telemetry import OUTBOX_DEAD, OUTBOX_MESSAGES, OUTBOX_REDELIVERED

log = logging.getLogger(__name__)

# A message sent this many times without a successful job is kept as a dead letter.
MAX_ATTEMPTS = 25


@dataclass
class SweepReport:
    delivered: int = 0
    waiting: int = 0
    resent: int = 0
    dead: int = 0
    errors: list[str] = field(default_factory=list)


async def _job_states(
    redis: ArqRedis, prefix: str, delivery_ids: list[str]
) -> dict[str, tuple[bool, bytes | None]]:
    """Per delivery: (queued or running, stored result)."""
    pipe = redis.pipeline(transaction=False)
    for delivery_id in delivery_ids:
        job_id = arq_job_id(prefix, delivery_id)
        pipe.exists(job_key_prefix + job_id, in_progress_key_prefix + job_id)
        pipe.get(result_key_prefix + job_id)
    answers = await pipe.execute()
    return {
        delivery_id: (bool(answers[2 * i]), answers[2 * i + 1])
        for i, delivery_id in enumerate(delivery_ids)
    }


def _failure_of(raw: bytes) -> str | None:
    """None for a successful job, else its error text."""
    try:
        result = deserialize_result(raw)
    except Exception as exc:  # an unreadable result: treat as failed so it is re-run
        return f"unreadable result: {exc}"
    if result.success:
        return None
    return repr(result.result)[:1000]


async def confirm_deliveries(
    db: Database,
    model: type[OutboxMessageMixin],
    redis: ArqRedis,
    prefix: str,
    *,
    grace_seconds: float = 2.0,
    limit: int = 1000,
) -> SweepReport:
    """One pass of the sweep over deliveries sent at least ``grace_seconds`` ago: one
    Redis look per delivery, one statement per outcome. No row locks: every change is
    conditional on the delivery still being unconfirmed, and a message sent twice by two
    racing sweeps is handled twice by an idempotent consumer."""
    report = SweepReport()
    async with db.session() as session:
        repo = OutboxRepository.from_session(session, model)
        deliveries = {d: n for d, n in await repo.in_flight_deliveries(grace_seconds, limit)}
        if not deliveries:
            return report
        states = await _job_states(redis, prefix, list(deliveries))
        delivered: list[str] = []
        lost: list[str] = []
        for delivery_id, (pending, raw_result) in states.items():
            if raw_result is not None:
                failure = _failure_of(raw_result)
                if failure is None:
                    delivered.append(delivery_id)
                    continue
                # Sent again until MAX_ATTEMPTS sends, then kept as a dead letter. A stored
                # result would make arq drop the resend of a lone message's job id.
                await redis.delete(result_key_prefix + arq_job_id(prefix, delivery_id))
                report.dead += await repo.bury([delivery_id], failure, MAX_ATTEMPTS)
                report.resent += await repo.send_again([delivery_id], failure, MAX_ATTEMPTS)
                log.warning("outbox: delivery %s failed: %s", delivery_id, failure[:300])
            elif pending:
                report.waiting += deliveries[delivery_id]
            else:
                lost.append(delivery_id)
        report.delivered += await repo.confirm(delivered)
        redelivered = await repo.send_again(lost)
        report.resent += redelivered
    if report.dead:
        OUTBOX_DEAD.inc(report.dead)
        log.error("outbox: %d messages became dead letters", report.dead)
    if lost:
        OUTBOX_REDELIVERED.inc(redelivered)
        log.warning("outbox: %d sent messages unknown to Redis; sending them again", redelivered)
    return report


async def count_backlog(db: Database, model: type[OutboxMessageMixin]) -> dict[str, int]:
    """The owed messages, for the ``outbox_messages`` gauge."""
    async with db.session() as session:
        owed = await OutboxRepository.from_session(session, model).owed()
    for state, n in owed.items():
        OUTBOX_MESSAGES.labels(state).set(n)
    return owed


async def delete_old_delivered(db: Database, model: type[OutboxMessageMixin]) -> int:
    async with db.session() as session:
        return await OutboxRepository.from_session(session, model).delete_delivered_before()
