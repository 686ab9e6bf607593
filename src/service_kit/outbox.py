"""The transactional outbox: facts and commands for other services are written in the same
transaction as the change that caused them, and a relay in the worker enqueues them as arq
jobs (``_job_id`` = the message's job id) and marks them sent. Redis down means delay,
never loss; a lost Redis queue is rebuilt by consumers' reconcilers, never by resending here.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import datetime
from typing import Any

from arq.connections import ArqRedis
from sqlalchemy import DateTime, Index, Integer, String, func, select, text, update
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from service_kit.db import Database
from service_kit.queue import enqueue
from service_kit.telemetry import OUTBOX_LAG, OUTBOX_SENT

log = logging.getLogger(__name__)


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

    @declared_attr.directive
    def __table_args__(cls) -> tuple[Any, ...]:
        return (
            Index(
                "ix_outbox_messages_unsent",
                "created_at",
                postgresql_where=text("sent_at IS NULL"),
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
        return message

    async def claim_unsent(self, limit: int) -> list[OutboxMessageMixin]:
        m = self.model
        stmt = (
            select(m)
            .where(m.sent_at.is_(None))
            .order_by(m.created_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return list((await self.session.scalars(stmt)).all())

    async def mark_sent(self, ids: list[uuid.UUID]) -> None:
        m = self.model
        await self.session.execute(
            update(m).where(m.id.in_(ids)).values(sent_at=func.now(), attempts=m.attempts + 1)
        )

    async def count_unsent(self) -> int:
        m = self.model
        return int(await self.session.scalar(select(func.count()).where(m.sent_at.is_(None))) or 0)


async def relay_once(
    db: Database,
    model: type[OutboxMessageMixin],
    redis: ArqRedis,
    prefix: str,
    batch_size: int = 200,
) -> int:
    """Enqueue one batch of unsent messages; returns how many were sent.

    Rows are locked with SKIP LOCKED so several relays never send the same message at the
    same time; if Redis fails midway the transaction rolls back and the batch is retried.
    A message enqueued twice (crash after enqueue, before commit) is harmless: consumers
    are idempotent and arq drops a ``_job_id`` it still knows.
    """
    async with db.session() as session:
        repo = OutboxRepository.from_session(session, model)
        messages = await repo.claim_unsent(batch_size)
        if not messages:
            return 0
        for message in messages:
            await enqueue(
                redis, prefix, message.queue, message.job_name, message.payload, message.job_id
            )
            OUTBOX_LAG.observe(max(0.0, _age_seconds(message.created_at)))
        await repo.mark_sent([m.id for m in messages])
        OUTBOX_SENT.inc(len(messages))
        return len(messages)


def _age_seconds(created_at: datetime) -> float:
    from datetime import UTC

    return (datetime.now(UTC) - created_at).total_seconds()


async def relay_forever(
    db: Database,
    model: type[OutboxMessageMixin],
    redis: ArqRedis,
    prefix: str,
    poll_seconds: float = 0.2,
    batch_size: int = 200,
) -> None:
    """Polling is the real delivery path; failures back off and retry, never drop."""
    backoff = poll_seconds
    while True:
        try:
            sent = await relay_once(db, model, redis, prefix, batch_size)
            backoff = poll_seconds
            if sent >= batch_size:
                continue
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("outbox relay failed; retrying", exc_info=True)
            backoff = min(backoff * 2, 5.0)
        await asyncio.sleep(backoff)
