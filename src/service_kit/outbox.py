"""The transactional outbox: facts and commands for other services are written in the same
transaction as the change that caused them; a relay in each worker delivers them as arq jobs
and keeps each message owed until its job has *finished*.

A message's life: unsent → sent (enqueued in a delivery: one arq job carrying the payloads
of up to ``max_per_job`` messages of one job name) → delivered (arq holds the job's result).
The sweep (``confirm_deliveries``) looks in Redis for every sent, undelivered message: a
result means delivered; a job that is queued or running means wait; nothing at all (Redis
lost its data, or the job's key expired) means the message goes back to unsent and is sent
again. A failed result (a poison message, or transient errors past arq's tries) also sends it
again, up to ``MAX_ATTEMPTS`` sends, after which it is kept as a dead letter with its error.
Consumers are idempotent by unique keys, so a second run of a message is harmless.

Guarantee: PostgreSQL is the source of truth until a message's effect is durable. Whatever
Redis loses, every owed message is enqueued again within ``grace + sweep interval``
(seconds) of Redis and a worker being back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix, job_key_prefix, result_key_prefix
from arq.jobs import deserialize_result
from sqlalchemy import (
    DateTime,
    Index,
    Integer,
    String,
    Text,
    delete,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from service_kit.db import OUTBOX_WRITTEN, Database
from service_kit.queue import SERVICES, Delivery, arq_job_id, enqueue_many, queue_name
from service_kit.telemetry import (
    OUTBOX_DEAD,
    OUTBOX_LAG,
    OUTBOX_MESSAGES,
    OUTBOX_REDELIVERED,
    OUTBOX_SENT,
    QUEUE_JOBS,
)

log = logging.getLogger(__name__)

# A message sent this many times without a successful job is kept as a dead letter.
MAX_ATTEMPTS = 25
# Delivered messages are kept this long (for explaining what happened), then deleted.
KEEP_DELIVERED = "2 days"
NOTIFY_CHANNEL = "outbox"
HELD_BACK_POLL_SECONDS = 0.05


class OutboxMessageMixin:
    """Columns of every service's ``outbox_messages`` table."""

    __tablename__ = "outbox_messages"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    queue: Mapped[str] = mapped_column(String(32), nullable=False)
    job_name: Mapped[str] = mapped_column(String(64), nullable=False)
    job_id: Mapped[str] = mapped_column(String(200), nullable=False)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # The arq job id of the delivery that carries the message (one job per batch).
    delivery_id: Mapped[str | None] = mapped_column(String(200))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)

    @declared_attr.directive
    def __table_args__(cls) -> tuple[Any, ...]:
        return (
            Index(
                "ix_outbox_messages_unsent",
                "created_at",
                postgresql_where=text("sent_at IS NULL"),
            ),
            Index(
                "ix_outbox_messages_in_flight",
                "sent_at",
                postgresql_where=text("sent_at IS NOT NULL AND delivered_at IS NULL"),
            ),
        )


class OutboxRepository:
    def __init__(self, session: AsyncSession, model: type[OutboxMessageMixin]) -> None:
        self.session = session
        self.model = model

    @classmethod
    def from_session(
        cls, session: AsyncSession, model: type[OutboxMessageMixin]
    ) -> OutboxRepository:
        return cls(session, model)

    def add(
        self, queue: str, job_name: str, payload: dict[str, Any], job_id: str | None = None
    ) -> OutboxMessageMixin:
        message_id = uuid.uuid4()
        message = self.model(  # type: ignore[call-arg]  # a mapped subclass
            id=message_id,
            queue=queue,
            job_name=job_name,
            job_id=job_id or str(message_id),
            payload=payload,
            attempts=0,
        )
        self.session.add(message)
        self.session.info[OUTBOX_WRITTEN] = True  # see Database.session: wakes the relay
        return message

    async def claim_unsent(self, limit: int, skip_queues: Sequence[str] = ()) -> list[Any]:
        m = self.model
        stmt = select(m.id, m.queue, m.job_name, m.job_id, m.payload, m.created_at).where(
            m.sent_at.is_(None)
        )
        if skip_queues:
            stmt = stmt.where(m.queue.not_in(skip_queues))
        stmt = stmt.order_by(m.created_at).limit(limit).with_for_update(skip_locked=True)
        return list((await self.session.execute(stmt)).all())

    async def mark_sent(self, deliveries: Sequence[Delivery]) -> None:
        m = self.model
        for delivery in deliveries:
            await self.session.execute(
                update(m)
                .where(m.id.in_(delivery.message_ids))
                .values(sent_at=func.now(), attempts=m.attempts + 1, delivery_id=delivery.job_id)
                .execution_options(synchronize_session=False)
            )

    async def in_flight_deliveries(self, older_than_seconds: float, limit: int) -> list[Any]:
        """Deliveries sent at least ``older_than_seconds`` ago and not confirmed, oldest
        first: (delivery_id, messages)."""
        m = self.model
        stmt = (
            select(m.delivery_id, func.count())
            .where(
                m.sent_at.is_not(None),
                m.delivered_at.is_(None),
                m.sent_at < func.now() - func.make_interval(0, 0, 0, 0, 0, 0, older_than_seconds),
            )
            .group_by(m.delivery_id)
            .order_by(func.min(m.sent_at))
            .limit(limit)
        )
        return list((await self.session.execute(stmt)).all())

    async def confirm(self, delivery_ids: Sequence[str]) -> int:
        return await self._settle(delivery_ids, {"delivered_at": func.now()})

    async def send_again(
        self, delivery_ids: Sequence[str], error: str | None = None, below_attempts: int = 0
    ) -> int:
        """Owed again (the relay sends them in a new delivery); with ``below_attempts``,
        only the messages sent fewer times than that."""
        values: dict[str, Any] = {"sent_at": None, "delivery_id": None}
        if error is not None:
            values["last_error"] = error
        return await self._settle(delivery_ids, values, below_attempts=below_attempts)

    async def bury(self, delivery_ids: Sequence[str], error: str, from_attempts: int) -> int:
        """Dead letters: kept with their error, never sent again."""
        return await self._settle(
            delivery_ids,
            {"delivered_at": func.now(), "last_error": error},
            from_attempts=from_attempts,
        )

    async def _settle(
        self,
        delivery_ids: Sequence[str],
        values: dict[str, Any],
        *,
        below_attempts: int = 0,
        from_attempts: int = 0,
    ) -> int:
        if not delivery_ids:
            return 0
        m = self.model
        stmt = update(m).where(m.delivery_id.in_(delivery_ids), m.delivered_at.is_(None))
        if below_attempts:
            stmt = stmt.where(m.attempts < below_attempts)
        if from_attempts:
            stmt = stmt.where(m.attempts >= from_attempts)
        result = await self.session.execute(
            stmt.values(**values).execution_options(synchronize_session=False)
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def delete_delivered_before(self, limit: int = 5000) -> int:
        m = self.model
        old = (
            select(m.id)
            .where(
                m.delivered_at.is_not(None),
                m.delivered_at < func.now() - text(f"interval '{KEEP_DELIVERED}'"),
            )
            .limit(limit)
        )
        result = await self.session.execute(
            delete(m).where(m.id.in_(old)).execution_options(synchronize_session=False)
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def count_unsent(self) -> int:
        m = self.model
        return int(await self.session.scalar(select(func.count()).where(m.sent_at.is_(None))) or 0)

    async def owed(self) -> dict[str, int]:
        """Unsent and in-flight messages, each counted on its partial index."""
        m = self.model
        unsent = await self.session.scalar(select(func.count()).where(m.sent_at.is_(None)))
        in_flight = await self.session.scalar(
            select(func.count()).where(m.sent_at.is_not(None), m.delivered_at.is_(None))
        )
        return {"unsent": int(unsent or 0), "in_flight": int(in_flight or 0)}

    async def backlog(self) -> dict[str, int]:
        """Messages owed: not yet sent, sent but not finished, and dead letters."""
        m = self.model
        stmt = select(
            func.count().filter(m.sent_at.is_(None)),
            func.count().filter(m.sent_at.is_not(None), m.delivered_at.is_(None)),
            func.count().filter(m.delivered_at.is_not(None), m.last_error.is_not(None)),
        ).where(m.delivered_at.is_(None) | m.last_error.is_not(None))
        unsent, in_flight, dead = (await self.session.execute(stmt)).one()
        return {"unsent": int(unsent), "in_flight": int(in_flight), "dead": int(dead)}


# --------------------------------------------------------------------------- sending


def plan_deliveries(rows: Sequence[Any], max_per_job: int) -> list[Delivery]:
    """Group messages of one queue and job name into deliveries of at most ``max_per_job``,
    keeping their order. A lone message keeps its own job id (arq then drops a resend while
    it still knows the job); a batch gets a fresh id."""
    groups: dict[tuple[str, str], list[Any]] = {}
    for row in rows:
        groups.setdefault((row.queue, row.job_name), []).append(row)
    deliveries: list[Delivery] = []
    for (queue, job_name), members in groups.items():
        for start in range(0, len(members), max_per_job):
            chunk = members[start : start + max_per_job]
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


# --------------------------------------------------------------------------- confirming


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


# --------------------------------------------------------------------------- the loop


class OutboxNotifier:
    """Tells the relays of this database that messages were committed: at most one
    ``NOTIFY outbox`` per ``delay`` however many transactions committed meanwhile.

    Not a trigger on insert: every NOTIFY takes a database-wide lock at commit, which cut
    single-event ingest to a third under load; coalesced here it costs a statement every few
    milliseconds at most, and a lost one only means the relay's next poll."""

    def __init__(self, db: Database, delay: float = 0.005) -> None:
        self.db = db
        self.delay = delay
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()

    def poke(self) -> None:
        if self._scheduled:
            return
        self._scheduled = True
        asyncio.get_running_loop().call_later(self.delay, self._start)

    def _start(self) -> None:
        task = asyncio.ensure_future(self._notify())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _notify(self) -> None:
        self._scheduled = False
        try:
            async with self.db.engine.connect() as conn:
                await conn.execute(text(f"NOTIFY {NOTIFY_CHANNEL}"))
                await conn.commit()
        except Exception as exc:  # the relay polls anyway
            log.debug("outbox: NOTIFY failed: %s", exc)


class Wakeup:
    """Wakes the relay as soon as a transaction with outbox rows commits: in-process
    ``set()`` for the worker's own jobs, ``LISTEN outbox`` for the API processes (see
    ``OutboxNotifier``). Polling stays the real path; a lost listener connection only means
    waiting for the next poll."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self._connection: Any = None

    def set(self, *_: Any) -> None:
        self.event.set()

    async def wait(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.event.wait(), timeout)
        self.event.clear()

    async def listen(self, db: Database) -> None:
        if self._connection is not None and not self._connection.is_closed():
            return
        try:
            raw = await db.engine.raw_connection()
            driver = raw.driver_connection  # the asyncpg connection
            assert driver is not None
            await driver.add_listener(NOTIFY_CHANNEL, self.set)
            raw.detach()  # never returned to the pool: it stays listening
            self._connection = driver
        except Exception:
            log.info("outbox: LISTEN unavailable; polling only", exc_info=True)

    async def close(self) -> None:
        if self._connection is not None and not self._connection.is_closed():
            with contextlib.suppress(Exception):
                await self._connection.close()
        self._connection = None


async def relay_forever(
    db: Database,
    model: type[OutboxMessageMixin],
    redis: ArqRedis,
    prefix: str,
    poll_seconds: float = 0.5,
    batch_size: int = 1000,
    *,
    max_per_job: int = 100,
    sweep_seconds: float = 1.0,
    grace_seconds: float = 2.0,
    wakeup: Wakeup | None = None,
) -> None:
    """Send owed messages as soon as they are committed (or at the latest every
    ``poll_seconds``) and sweep in-flight ones every ``sweep_seconds``. Failures back off
    and retry, never drop."""
    loop = asyncio.get_running_loop()
    wakeup = wakeup or Wakeup()
    backoff = poll_seconds
    next_sweep = loop.time()
    next_cleanup = loop.time() + 60
    next_count = loop.time()
    try:
        while True:
            try:
                await wakeup.listen(db)
                done = await relay_pass(db, model, redis, prefix, batch_size, max_per_job)
                if loop.time() >= next_sweep:
                    await confirm_deliveries(db, model, redis, prefix, grace_seconds=grace_seconds)
                    next_sweep = loop.time() + sweep_seconds
                if loop.time() >= next_count:
                    await count_backlog(db, model)
                    next_count = loop.time() + 15
                if loop.time() >= next_cleanup:
                    await delete_old_delivered(db, model)
                    next_cleanup = loop.time() + 600
                # While a consumer is behind, look again soon: it takes a bigger batch as
                # soon as its queue is short again.
                backoff = HELD_BACK_POLL_SECONDS if done.held_back else poll_seconds
                if done.sent >= batch_size:
                    continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("outbox relay failed; retrying: %s", exc)
                await wakeup.close()
                backoff = min(backoff * 2, 5.0)
                await asyncio.sleep(backoff)
                continue
            await wakeup.wait(min(backoff, max(0.0, next_sweep - loop.time()) + 0.01))
    finally:
        await wakeup.close()
