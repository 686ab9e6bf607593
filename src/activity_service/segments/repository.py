from __future__ import annotations

import builtins
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exists, func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from activity_service.segments.models import Segment, SegmentMember
from service_kit.pagination import PageParams, paginate

UPLOAD_TABLE = "segment_upload_ids"
# Closed membership intervals older than this can never be read by a snapshot (at most one
# day old, plus a DST day) and are purged.
HISTORY_KEPT = timedelta(days=3)


class SegmentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @classmethod
    def from_session(cls, session: AsyncSession) -> SegmentRepository:
        return cls(session)

    def add(self, segment: Segment) -> None:
        self.session.add(segment)

    async def get(self, tenant_id: str, segment_id: uuid.UUID) -> Segment | None:
        return await self.session.scalar(
            select(Segment).where(Segment.tenant_id == tenant_id, Segment.id == segment_id)
        )

    async def get_for_update(self, tenant_id: str, segment_id: uuid.UUID) -> Segment | None:
        """Locks the segment: two uploads to one segment run one after the other."""
        return await self.session.scalar(
            select(Segment)
            .where(Segment.tenant_id == tenant_id, Segment.id == segment_id)
            .with_for_update()
        )

    async def existing_ids(self, tenant_id: str, ids: list[uuid.UUID]) -> set[uuid.UUID]:
        if not ids:
            return set()
        rows = await self.session.scalars(
            select(Segment.id).where(Segment.tenant_id == tenant_id, Segment.id.in_(ids))
        )
        return set(rows.all())

    async def name_taken(self, tenant_id: str, name: str) -> bool:
        return bool(
            await self.session.scalar(
                select(func.count()).where(Segment.tenant_id == tenant_id, Segment.name == name)
            )
        )

    async def list(self, tenant_id: str, params: PageParams) -> tuple[list[Segment], str | None]:
        return await paginate(
            self.session, select(Segment).where(Segment.tenant_id == tenant_id), Segment, params
        )

    async def external(self) -> builtins.list[Segment]:
        return list(
            (await self.session.scalars(select(Segment).where(Segment.source == "external"))).all()
        )

    async def touch(self, segment_id: uuid.UUID, values: dict[str, Any]) -> None:
        await self.session.execute(
            update(Segment).where(Segment.id == segment_id).values(**values, updated_at=func.now())
        )

    async def member_count(self, segment_id: uuid.UUID) -> int:
        return int(
            await self.session.scalar(
                select(func.count()).where(
                    SegmentMember.segment_id == segment_id, SegmentMember.removed_at.is_(None)
                )
            )
            or 0
        )

    async def member_counts(self, segment_ids: builtins.list[uuid.UUID]) -> dict[uuid.UUID, int]:
        if not segment_ids:
            return {}
        rows = await self.session.execute(
            select(SegmentMember.segment_id, func.count())
            .where(SegmentMember.segment_id.in_(segment_ids), SegmentMember.removed_at.is_(None))
            .group_by(SegmentMember.segment_id)
        )
        return {row[0]: int(row[1]) for row in rows.all()}

    async def is_member_at(
        self, tenant_id: str, segment_id: uuid.UUID, user_id: str, at: datetime
    ) -> bool:
        """Was ``user_id`` in the segment at ``at``: an interval [added_at, removed_at)
        covers it."""
        m = SegmentMember
        stmt = select(
            exists().where(
                m.segment_id == segment_id,
                m.user_id == user_id,
                m.added_at <= at,
                or_(m.removed_at.is_(None), m.removed_at > at),
                exists().where(Segment.id == m.segment_id, Segment.tenant_id == tenant_id),
            )
        )
        return bool(await self.session.scalar(stmt))

    async def members_at(
        self, tenant_id: str, segment_id: uuid.UUID, asked: builtins.list[tuple[str, datetime]]
    ) -> set[tuple[str, datetime]]:
        """``is_member_at`` for many (user, snapshot time) pairs in one statement: the pairs
        whose user was in the segment at that time."""
        if not asked:
            return set()
        rows = await self.session.execute(
            text(
                "SELECT p.user_id, p.at "
                "FROM unnest(CAST(:users AS text[]), CAST(:ats AS timestamptz[])) "
                "     AS p(user_id, at) "
                "WHERE EXISTS (SELECT 1 FROM segments s WHERE s.id = :segment_id "
                "              AND s.tenant_id = :tenant_id) "
                "AND EXISTS (SELECT 1 FROM segment_members m WHERE m.segment_id = :segment_id "
                "            AND m.user_id = p.user_id AND m.added_at <= p.at "
                "            AND (m.removed_at IS NULL OR m.removed_at > p.at))"
            ),
            {
                "users": [user for user, _ in asked],
                "ats": [at for _, at in asked],
                "segment_id": segment_id,
                "tenant_id": tenant_id,
            },
        )
        return {(row[0], row[1]) for row in rows.all()}

    async def is_member_now(self, segment_id: uuid.UUID, user_id: str) -> bool:
        m = SegmentMember
        stmt = select(
            exists().where(m.segment_id == segment_id, m.user_id == user_id, m.removed_at.is_(None))
        )
        return bool(await self.session.scalar(stmt))

    # ------------------------------------------------------------------ bulk membership

    async def load_upload(self, user_ids: builtins.list[str]) -> None:
        """COPY the ids into a transaction-local temporary table (fast for 10^5–10^6 rows);
        the set operations below join against it."""
        conn = await self.session.connection()
        await conn.exec_driver_sql(
            f"CREATE TEMP TABLE IF NOT EXISTS {UPLOAD_TABLE} "
            "(user_id varchar(128) PRIMARY KEY) ON COMMIT DROP"
        )
        await conn.exec_driver_sql(f"TRUNCATE {UPLOAD_TABLE}")
        if not user_ids:
            return
        raw = await conn.get_raw_connection()
        driver: Any = raw.driver_connection
        await driver.copy_records_to_table(
            UPLOAD_TABLE, records=[(u,) for u in user_ids], columns=["user_id"]
        )

    async def add_uploaded(self, segment_id: uuid.UUID, at: datetime) -> int:
        result = await self.session.execute(
            text(
                "INSERT INTO segment_members (segment_id, user_id, added_at) "
                "SELECT CAST(:segment_id AS uuid), u.user_id, CAST(:at AS timestamptz) "
                f"FROM {UPLOAD_TABLE} u "
                "ON CONFLICT (segment_id, user_id) WHERE removed_at IS NULL DO NOTHING"
            ),
            {"segment_id": segment_id, "at": at},
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def remove_uploaded(self, segment_id: uuid.UUID, at: datetime) -> int:
        result = await self.session.execute(
            text(
                f"UPDATE segment_members m SET removed_at = :at FROM {UPLOAD_TABLE} u "
                "WHERE m.segment_id = :segment_id AND m.removed_at IS NULL "
                "AND m.user_id = u.user_id"
            ),
            {"segment_id": segment_id, "at": at},
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def remove_not_uploaded(self, segment_id: uuid.UUID, at: datetime) -> int:
        result = await self.session.execute(
            text(
                "UPDATE segment_members m SET removed_at = :at "
                "WHERE m.segment_id = :segment_id AND m.removed_at IS NULL "
                f"AND NOT EXISTS (SELECT 1 FROM {UPLOAD_TABLE} u WHERE u.user_id = m.user_id)"
            ),
            {"segment_id": segment_id, "at": at},
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def purge_history(self, segment_id: uuid.UUID, now: datetime) -> None:
        await self.session.execute(
            text(
                "DELETE FROM segment_members WHERE segment_id = :segment_id "
                "AND removed_at IS NOT NULL AND removed_at < :before"
            ),
            {"segment_id": segment_id, "before": now - HISTORY_KEPT},
        )
