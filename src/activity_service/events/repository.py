from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import String, any_, bindparam, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from activity_service.events.models import Event
from service_kit.correlation import stamp
from service_kit.db import OUTBOX_WRITTEN, any_of, json_text

FollowUp = tuple[str, str, dict[str, Any], str]
"""(queue, job name, payload, job id) of an outbox message."""

Scope = tuple[Sequence[str], datetime | None, datetime]
"""Events of these types in [since, until)."""

# An event id is claimed in event_keys (unique per tenant across every month); only a new
# claim stores the event, in the partition of its arrival month, and its messages.
_INSERT_ONE = """
WITH claim AS (
    INSERT INTO event_keys (tenant_id, event_id) VALUES ($1, $2)
    ON CONFLICT (tenant_id, event_id) DO NOTHING
    RETURNING received_at
), ins AS (
    INSERT INTO events (id, tenant_id, event_id, type, user_id, app_id, occurred_at,
                        payload, received_by, received_at)
    SELECT gen_random_uuid(), $1, $2, $3, $4, $5, $6, $7::jsonb, $8, claim.received_at
    FROM claim
    RETURNING received_at
), outbox AS (
    INSERT INTO outbox_messages (id, queue, job_name, job_id, payload, attempts)
    SELECT gen_random_uuid(), m.queue, m.job_name, m.job_id, m.payload, 0
    FROM jsonb_to_recordset($9::jsonb) AS m(
        queue text, job_name text, job_id text, payload jsonb)
    CROSS JOIN ins
)
SELECT received_at FROM ins
"""

_STORED = "SELECT payload, received_at FROM events WHERE tenant_id = $1 AND event_id = $2"

# A batch in one statement each for the events and their messages: rows travel as arrays
# (one bind per column, a statement text that never changes, so it is compiled once).
_INSERT_MANY = text(
    """
WITH input AS (
    SELECT DISTINCT ON (tenant_id, event_id) *
    FROM unnest(CAST(:tenants AS text[]), CAST(:event_ids AS text[]), CAST(:types AS text[]),
                CAST(:users AS text[]), CAST(:apps AS text[]),
                CAST(:occurred AS timestamptz[]), CAST(:payloads AS text[]),
                CAST(:received_by AS text[]))
         AS t(tenant_id, event_id, type, user_id, app_id, occurred_at, payload, received_by)
), claim AS (
    INSERT INTO event_keys (tenant_id, event_id)
    SELECT tenant_id, event_id FROM input
    ON CONFLICT (tenant_id, event_id) DO NOTHING
    RETURNING tenant_id, event_id, received_at
), stored AS (
    INSERT INTO events (id, tenant_id, event_id, type, user_id, app_id, occurred_at,
                        payload, received_by, received_at)
    SELECT gen_random_uuid(), i.tenant_id, i.event_id, i.type, i.user_id, i.app_id,
           i.occurred_at, i.payload::jsonb, i.received_by, claim.received_at
    FROM input AS i JOIN claim USING (tenant_id, event_id)
    RETURNING event_id, received_at
)
-- One row of two arrays: a thousand result rows cost the API more than the insert.
SELECT coalesce(array_agg(event_id), '{}'), coalesce(array_agg(received_at), '{}') FROM stored
"""
)
_INSERT_MESSAGES = text(
    """
INSERT INTO outbox_messages (id, queue, job_name, job_id, payload, attempts)
SELECT gen_random_uuid(), queue, job_name, job_id, payload::jsonb, 0
FROM unnest(CAST(:queues AS text[]), CAST(:job_names AS text[]), CAST(:job_ids AS text[]),
            CAST(:payloads AS text[]))
     AS m(queue, job_name, job_id, payload)
"""
)


class EventWriter:
    """Single-event ingestion on a plain asyncpg connection in autocommit (``events.db``):
    one statement stores the event and, only if it is new, its outbox messages."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    async def insert_with_follow_ups(
        self, values: dict[str, Any], follow_ups: Sequence[FollowUp]
    ) -> datetime | None:
        """Returns the receipt time, or None when the event id was known."""
        received_at: datetime | None = await self.connection.fetchval(
            _INSERT_ONE,
            values["tenant_id"],
            values["event_id"],
            values["type"],
            values["user_id"],
            values["app_id"],
            values["occurred_at"],
            values["payload"],
            values["received_by"],
            json_text(_message_rows(follow_ups)),
        )
        return received_at

    async def stored(self, tenant_id: str, event_id: str) -> tuple[dict[str, Any], datetime] | None:
        row = await self.connection.fetchrow(_STORED, tenant_id, event_id)
        if row is None:
            return None
        payload = row["payload"]
        return (json.loads(payload) if isinstance(payload, str) else payload), row["received_at"]


def _message_rows(follow_ups: Sequence[FollowUp]) -> list[dict[str, Any]]:
    return [
        {"queue": q, "job_name": j, "job_id": jid, "payload": stamp(p)}
        for q, j, p, jid in follow_ups
    ]


class EventRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @classmethod
    def from_session(cls, session: AsyncSession) -> EventRepository:
        return cls(session)

    async def insert_many(self, rows: list[dict[str, Any]]) -> dict[str, datetime]:
        """Store new events of one tenant (known ids are skipped). Returns {event_id:
        received_at} of the new ones."""
        if not rows:
            return {}
        result = await self.session.execute(
            _INSERT_MANY,
            {
                "tenants": [r["tenant_id"] for r in rows],
                "event_ids": [r["event_id"] for r in rows],
                "types": [r["type"] for r in rows],
                "users": [r["user_id"] for r in rows],
                "apps": [r["app_id"] for r in rows],
                "occurred": [r["occurred_at"] for r in rows],
                "payloads": [r["payload"] for r in rows],
                "received_by": [r["received_by"] for r in rows],
            },
        )
        event_ids, received = result.one()
        return dict(zip(event_ids, received, strict=True))

    async def add_messages(self, follow_ups: Sequence[FollowUp]) -> None:
        """The outbox messages of the events just stored, in one statement."""
        if not follow_ups:
            return
        messages = _message_rows(follow_ups)
        self.session.info[OUTBOX_WRITTEN] = True
        await self.session.execute(
            _INSERT_MESSAGES,
            {
                "queues": [m["queue"] for m in messages],
                "job_names": [m["job_name"] for m in messages],
                "job_ids": [m["job_id"] for m in messages],
                "payloads": [json_text(m["payload"]) for m in messages],
            },
        )

    async def get(self, tenant_id: str, event_id: str) -> Event | None:
        return await self.session.scalar(
            select(Event).where(Event.tenant_id == tenant_id, Event.event_id == event_id)
        )

    async def get_many(self, tenant_id: str, event_ids: Sequence[str]) -> dict[str, Event]:
        if not event_ids:
            return {}
        rows = await self.session.scalars(
            select(Event).where(Event.tenant_id == tenant_id, any_of(Event.event_id, event_ids))
        )
        return {e.event_id: e for e in rows}

    async def first_of_types(
        self, tenant_id: str, user_id: str, types: Sequence[str]
    ) -> dict[str, tuple[datetime, str]]:
        """Per type, the user's earliest stored event (time, event id): one probe of
        ix_events_tenant_user_occurred, whose cost follows the user's own events."""
        stmt = (
            select(Event.type, Event.occurred_at, Event.event_id)
            .where(Event.tenant_id == tenant_id, Event.user_id == user_id, Event.type.in_(types))
            .order_by(Event.type, Event.occurred_at, Event.event_id)
            .distinct(Event.type)
        )
        rows = await self.session.execute(stmt)
        return {type_: (at, event_id) for type_, at, event_id in rows.all()}

    async def has_earlier(self, event: Event, types: Sequence[str]) -> bool:
        """Whether the user has an event of these types before ``event`` (by time, then id:
        the order the flows are sorted in)."""
        stmt = select(Event.id).where(
            Event.tenant_id == event.tenant_id,
            Event.user_id == event.user_id,
            Event.type.in_(types),
            (Event.occurred_at < event.occurred_at)
            | ((Event.occurred_at == event.occurred_at) & (Event.event_id < event.event_id)),
        )
        return (await self.session.scalar(stmt.limit(1))) is not None

    async def with_earlier(
        self, tenant_id: str, events: Sequence[Event], types: Sequence[str]
    ) -> set[str]:
        """The ids of ``events`` (one tenant's) whose user has an event of these types
        before it: ``has_earlier`` of many events in one statement."""
        if not events:
            return set()
        found = await self.session.scalars(
            text(
                """
                SELECT t.event_id
                FROM unnest(CAST(:users AS text[]), CAST(:ats AS timestamptz[]),
                            CAST(:ids AS text[])) AS t(user_id, occurred_at, event_id)
                WHERE EXISTS (
                    SELECT 1 FROM events e
                    WHERE e.tenant_id = :tenant AND e.user_id = t.user_id
                      AND e.type = ANY(CAST(:types AS text[]))
                      AND (e.occurred_at, e.event_id) < (t.occurred_at, t.event_id)
                )
                """
            ),
            {
                "tenant": tenant_id,
                "users": [e.user_id for e in events],
                "ats": [e.occurred_at for e in events],
                "ids": [e.event_id for e in events],
                "types": list(types),
            },
        )
        return set(found.all())

    async def of_user(
        self,
        tenant_id: str,
        user_id: str,
        types: Sequence[str],
        until: datetime | None = None,
    ) -> list[Event]:
        """The user's events of these types (the whole history up to ``until``), oldest
        first; ties broken by event id so the order never depends on arrival."""
        stmt = select(Event).where(
            Event.tenant_id == tenant_id, Event.user_id == user_id, Event.type.in_(types)
        )
        if until is not None:
            stmt = stmt.where(Event.occurred_at < until)
        stmt = stmt.order_by(Event.occurred_at, Event.event_id)
        return list((await self.session.scalars(stmt)).all())

    async def first_login_on_device(
        self, tenant_id: str, app_id: str, device_id: str
    ) -> Event | None:
        """The earliest stored login on a device in an app, whoever made it: every login
        received so far counts, also those whose evaluation has not run yet."""
        stmt = (
            select(Event)
            .where(
                Event.tenant_id == tenant_id,
                Event.app_id == app_id,
                Event.type == "app.login",
                Event.payload["device_id"].astext == device_id,
            )
            .order_by(Event.occurred_at, Event.event_id)
            .limit(1)
        )
        return await self.session.scalar(stmt)

    async def users_with(
        self, tenant_id: str, types: Sequence[str], since: datetime | None, until: datetime
    ) -> list[str]:
        """Users with events of these types in [since, until), sorted (a stable order lets
        the daily run resume after the last user it finished)."""
        stmt = select(Event.user_id).where(
            Event.tenant_id == tenant_id, Event.type.in_(types), Event.occurred_at < until
        )
        if since is not None:
            stmt = stmt.where(Event.occurred_at >= since)
        stmt = stmt.distinct().order_by(Event.user_id)
        return list((await self.session.scalars(stmt)).all())

    async def users_in_scopes(
        self, tenant_id: str, scopes: Sequence[Scope], after: str | None = None
    ) -> list[str]:
        """Users with an event in any of the scopes, sorted, after ``after`` if given: the
        users one pass of the daily run decides (a stable order lets it resume after the
        last chunk it finished)."""
        if not scopes:
            return []
        # Read through the driver's own connection, in the session's transaction: a run of
        # a million users reads a million ids (again after each time budget), and building
        # a result row per id cost more than the query.
        args: list[Any] = [tenant_id]
        matches = []
        for types, since, until in scopes:
            args += [list(types), until]
            match = f"(type = ANY(${len(args) - 1}::text[]) AND occurred_at < ${len(args)}"
            if since is not None:
                args.append(since)
                match += f" AND occurred_at >= ${len(args)}"
            matches.append(match + ")")
        sql = (
            f"SELECT DISTINCT user_id FROM events WHERE tenant_id = $1 AND ({' OR '.join(matches)})"
        )
        if after is not None:
            args.append(after)
            sql += f" AND user_id > ${len(args)}"
        conn = await self.session.connection()
        raw = await conn.get_raw_connection()
        driver: Any = raw.driver_connection
        return [row[0] for row in await driver.fetch(sql + " ORDER BY user_id", *args)]

    async def of_users(
        self, tenant_id: str, user_ids: Sequence[str], types: Sequence[str]
    ) -> dict[str, list[Any]]:
        """The events of these types of many users (their whole history), grouped per user,
        each user's oldest first with ties broken by event id, like ``of_user``. Rows carry
        ``type``, ``event_id``, ``app_id``, ``occurred_at`` and ``payload``."""
        if not user_ids:
            return {}
        stmt = (
            select(
                Event.user_id,
                Event.type,
                Event.event_id,
                Event.app_id,
                Event.occurred_at,
                Event.payload,
            )
            .where(
                Event.tenant_id == tenant_id,
                Event.user_id == any_(bindparam("user_ids", list(user_ids), ARRAY(String))),
                Event.type.in_(list(types)),
            )
            .order_by(Event.user_id, Event.occurred_at, Event.event_id)
        )
        grouped: dict[str, list[Any]] = {}
        for row in (await self.session.execute(stmt)).all():
            grouped.setdefault(row.user_id, []).append(row)
        return grouped


class EventKeyRepository:
    """The event ids claimed per tenant (``event_keys``)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def delete_received_before(self, cutoff: datetime, limit: int = 10_000) -> int:
        """Forgets up to ``limit`` ids whose events are past the retention (their partitions
        dropped); the BRIN index on the arrival time finds them without a scan."""
        result = await self.session.execute(
            text(
                "DELETE FROM event_keys WHERE ctid = ANY(ARRAY("
                "SELECT ctid FROM event_keys WHERE received_at < :cutoff LIMIT :limit))"
            ),
            {"cutoff": cutoff, "limit": limit},
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]
