"""Sending: unsent messages grouped into deliveries and enqueued, with back-pressure."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from arq.connections import ArqRedis

from service_kit.db import Database
from service_kit.outbox.bundles import weight
from service_kit.outbox.models import OutboxMessageMixin
from service_kit.outbox.repository import OutboxRepository
from service_kit.queue import SERVICES, Delivery, enqueue_many, queue_name
from service_kit.telemetry import OUTBOX_LAG, OUTBOX_SENT, QUEUE_JOBS


def plan_deliveries(rows: Sequence[Any], max_per_job: int) -> list[Delivery]:
    """Group messages of one queue and job name into deliveries of at most ``max_per_job``
    items (a message counts one, a bundle its items: ``bundles.weight``), keeping their
    order. A lone message keeps its own job id (arq then drops a resend while it still
    knows the job); a batch gets a fresh id."""
    groups: dict[tuple[str, str], list[Any]] = {}
    for row in rows:
        groups.setdefault((row.queue, row.job_name), []).append(row)
    deliveries: list[Delivery] = []
    for (queue, job_name), members in groups.items():
        for chunk in _by_weight(members, max_per_job):
            job_id = chunk[0].job_id if len(chunk) == 1 else f"batch:{uuid.uuid4().hex}"
            deliveries.append(
                Delivery(
                    queue=queue,
                    job_name=job_name,
                    job_id=job_id,
                    payloads=[r.payload for r in chunk],
                    message_ids=[r.id for r in chunk],
                )
            )
    return deliveries


def _by_weight(members: list[Any], max_per_job: int) -> list[list[Any]]:
    chunks: list[list[Any]] = []
    chunk: list[Any] = []
    carried = 0
    for row in members:
        items = weight(row.payload)
        if chunk and carried + items > max_per_job:
            chunks.append(chunk)
            chunk, carried = [], 0
        chunk.append(row)
        carried += items
    if chunk:
        chunks.append(chunk)
    return chunks


# A destination queue with this many jobs waiting is not sent more for now: its messages
# wait in the outbox and leave together in the next, bigger deliveries.
MAX_QUEUED_JOBS = 20


@dataclass
class RelayPass:
    sent: int = 0
    # Destination queues skipped because their consumers are behind.
    held_back: list[str] = field(default_factory=list)


async def _busy_queues(redis: ArqRedis, prefix: str, limit: int) -> list[str]:
    pipe = redis.pipeline(transaction=False)
    for service in SERVICES:
        pipe.zcard(queue_name(prefix, service))
    lengths = await pipe.execute()
    for service, n in zip(SERVICES, lengths, strict=True):
        QUEUE_JOBS.labels(service).set(n)
    return [service for service, n in zip(SERVICES, lengths, strict=True) if n >= limit]


async def relay_pass(
    db: Database,
    model: type[OutboxMessageMixin],
    redis: ArqRedis,
    prefix: str,
    batch_size: int = 1000,
    max_per_job: int = 100,
    max_queued_jobs: int | None = MAX_QUEUED_JOBS,
) -> RelayPass:
    """Enqueue one batch of unsent messages.

    Rows are locked with SKIP LOCKED so several relays never send the same message at the
    same time; if Redis fails midway the transaction rolls back and the batch is retried.
    A message enqueued twice (crash after enqueue, before commit) is harmless: consumers
    are idempotent.

    Back-pressure makes the batches: while a consumer keeps up its queue is short and each
    message leaves at once (low latency); once ``max_queued_jobs`` jobs wait in its queue,
    its messages stay here and leave together in deliveries of up to ``max_per_job`` when
    it catches up, so the consumer's per-job costs are paid once per hundred messages.
    """
    held = await _busy_queues(redis, prefix, max_queued_jobs) if max_queued_jobs else []
    async with db.session() as session:
        repo = OutboxRepository.from_session(session, model)
        rows = await repo.claim_unsent(batch_size, held)
        if not rows:
            return RelayPass(0, held)
        deliveries = plan_deliveries(rows, max_per_job)
        await enqueue_many(redis, prefix, deliveries)
        now = datetime.now(UTC)
        for row in rows:
            OUTBOX_LAG.observe(max(0.0, (now - row.created_at).total_seconds()))
        await repo.mark_sent(deliveries)
        OUTBOX_SENT.inc(len(rows))
        return RelayPass(len(rows), held)


async def relay_once(
    db: Database,
    model: type[OutboxMessageMixin],
    redis: ArqRedis,
    prefix: str,
    batch_size: int = 1000,
    max_per_job: int = 100,
) -> int:
    """Enqueue one batch of unsent messages, whatever waits in the queues; returns how
    many were sent (tests and tools that drain the outbox)."""
    done = await relay_pass(db, model, redis, prefix, batch_size, max_per_job, None)
    return done.sent
