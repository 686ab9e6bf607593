"""All SQL on the outbox: claiming, marking, settling deliveries, counting."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from service_kit.correlation import stamp
from service_kit.db import OUTBOX_WRITTEN, any_of, json_text, plan_for_parameters
from service_kit.outbox.models import OutboxMessageMixin
from service_kit.queue import Delivery

# Delivered messages are kept this long (for explaining what happened), then deleted.
KEEP_DELIVERED = "2 days"


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
            # The request (or job) that caused the message travels with it.
            payload=stamp(payload),
            attempts=0,
        )
        self.session.add(message)
        self.session.info[OUTBOX_WRITTEN] = True  # see Database.session: wakes the relay
        return message

    async def insert_many(
        self, queue: str, job_name: str, payloads: Sequence[dict[str, Any]]
    ) -> None:
        """Messages written at once, by one statement (one array of payloads) instead of an
        object each for the session's flush; each its own job id, like ``add``'s. Not for
        a message that a later fact of the unit of work may ``restate``."""
        if not payloads:
            return
        await self.session.execute(
            text(
                "WITH m AS MATERIALIZED (SELECT gen_random_uuid() AS id, p.payload"
                " FROM unnest(CAST(:payloads AS text[])) WITH ORDINALITY AS p(payload, n)"
                f" ORDER BY p.n) INSERT INTO {self.model.__tablename__}"
                " (id, queue, job_name, job_id, payload, attempts)"
                " SELECT m.id, CAST(:queue AS text), CAST(:job_name AS text),"
                " CAST(m.id AS text), CAST(m.payload AS jsonb), 0 FROM m"
            ),
            {
                "payloads": [json_text(stamp(payload)) for payload in payloads],
                "queue": queue,
                "job_name": job_name,
            },
        )
        self.session.info[OUTBOX_WRITTEN] = True  # see Database.session: wakes the relay

    def restate(self, message: OutboxMessageMixin, payload: dict[str, Any]) -> None:
        """Replace the payload of a message not yet flushed (a later fact of the same unit
        of work supersedes it), keeping it stamped like ``add``."""
        message.payload = stamp(payload)

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
        """Every message of ``deliveries`` sent, in one statement whatever their number (one
        per delivery, each an IN list of its own length, was a statement to prepare each)."""
        pairs = [(mid, d.job_id) for d in deliveries for mid in d.message_ids]
        if not pairs:
            return
        # A generic plan joined the arrays by a scan of the whole table: 3 to 5 ms a pass
        # at 20k rows.
        await plan_for_parameters(self.session)
        await self.session.execute(
            text(
                f"UPDATE {self.model.__tablename__} AS m"
                " SET sent_at = now(), attempts = m.attempts + 1, delivery_id = d.delivery_id"
                " FROM unnest(CAST(:ids AS uuid[]), CAST(:deliveries AS varchar[]))"
                " AS d(id, delivery_id) WHERE m.id = d.id"
            ),
            {"ids": [mid for mid, _ in pairs], "deliveries": [job for _, job in pairs]},
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
        """Rows another sweep is settling right now are skipped (it settles them): two
        workers' sweeps over the same failed deliveries, each settling several in one
        transaction, locked the same rows in different orders and deadlocked."""
        if not delivery_ids:
            return 0
        m = self.model
        # A delivery's messages are sent ones (``mark_sent`` sets both columns, ``send_again``
        # clears both): saying so lets the in-flight partial index find them, instead of a
        # scan of every message kept.
        target = select(m.id).where(
            any_of(m.delivery_id, delivery_ids),
            m.sent_at.is_not(None),
            m.delivered_at.is_(None),
        )
        if below_attempts:
            target = target.where(m.attempts < below_attempts)
        if from_attempts:
            target = target.where(m.attempts >= from_attempts)
        target = target.with_for_update(skip_locked=True)
        stmt = update(m).where(m.id.in_(target))
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

    async def unsent_for_tenant(self, tenant_id: str) -> int:
        """How many of a tenant's messages are not sent yet (a small, indexed set)."""
        m = self.model
        return int(
            await self.session.scalar(
                select(func.count()).where(
                    m.sent_at.is_(None), m.payload["tenant_id"].astext == tenant_id
                )
            )
            or 0
        )

    async def tenant_deliveries_among(self, tenant_id: str, delivery_ids: Sequence[str]) -> int:
        """How many of ``delivery_ids`` carry a sent, unconfirmed message of the tenant."""
        if not delivery_ids:
            return 0
        m = self.model
        stmt = select(func.count(func.distinct(m.delivery_id))).where(
            m.sent_at.is_not(None),
            m.delivered_at.is_(None),
            m.delivery_id.in_(delivery_ids),
            m.payload["tenant_id"].astext == tenant_id,
        )
        return int(await self.session.scalar(stmt) or 0)

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
