from __future__ import annotations

import builtins
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import String, Text, cast, delete, func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from activity_service.activities.models import Activity
from activity_service.activities.rules import ActivityStatus
from service_kit.pagination import PageParams, paginate


@dataclass(frozen=True)
class ActivityFilters:
    kind: str | None = None
    status: ActivityStatus | None = None
    code: str | None = None
    name: str | None = None
    window_from: datetime | None = None
    window_to: datetime | None = None
    prize_id: uuid.UUID | None = None


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class ActivityRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @classmethod
    def from_session(cls, session: AsyncSession) -> ActivityRepository:
        return cls(session)

    def add(self, activity: Activity) -> None:
        self.session.add(activity)

    async def next_seq(self, tenant_id: str) -> int:
        """The tenant's next sequence number. The transaction-scoped advisory lock serialises
        concurrent creations in one tenant, so two activities never get the same number."""
        await self.session.execute(
            text("SELECT pg_advisory_xact_lock(hashtext('activities.seq:' || :tenant))"),
            {"tenant": tenant_id},
        )
        current = await self.session.scalar(
            select(func.max(Activity.seq)).where(Activity.tenant_id == tenant_id)
        )
        return int(current or 0) + 1

    async def code_taken(self, tenant_id: str, activity_code: str, business_code: str) -> bool:
        found = await self.session.scalar(
            select(func.count()).where(
                Activity.tenant_id == tenant_id,
                (Activity.activity_code == activity_code)
                | (Activity.business_code == business_code),
            )
        )
        return bool(found)

    async def get(self, tenant_id: str, activity_id: uuid.UUID) -> Activity | None:
        return await self.session.scalar(
            select(Activity).where(Activity.tenant_id == tenant_id, Activity.id == activity_id)
        )

    async def by_code(self, tenant_id: str, activity_code: str) -> Activity | None:
        return await self.session.scalar(
            select(Activity).where(
                Activity.tenant_id == tenant_id, Activity.activity_code == activity_code
            )
        )

    async def list(
        self,
        tenant_id: str,
        params: PageParams,
        *,
        kind: str | None = None,
        filters: ActivityFilters | None = None,
        now: datetime | None = None,
    ) -> tuple[builtins.list[Activity], str | None]:
        stmt = select(Activity).where(Activity.tenant_id == tenant_id)
        f = filters or ActivityFilters(kind=kind)
        if f.kind:
            stmt = stmt.where(Activity.kind == f.kind)
        if f.status is not None:
            stmt = stmt.where(*self._status_clause(f.status, now))
        if f.code:
            code = f.code.strip().upper()
            stmt = stmt.where(or_(Activity.activity_code == code, Activity.business_code == code))
        if f.name:
            pattern = f"%{_escape_like(f.name.strip())}%"
            stmt = stmt.where(
                or_(
                    *(
                        cast(Activity.name[lang].astext, String).ilike(pattern, escape="\\")
                        for lang in ("zh-Hans", "zh-Hant", "en")
                    )
                )
            )
        if f.window_from is not None:
            stmt = stmt.where(Activity.ends_at > f.window_from)
        if f.window_to is not None:
            stmt = stmt.where(Activity.starts_at < f.window_to)
        if f.prize_id is not None:
            # A prize id appears in the stored config wherever a rule, tier, bonus, team
            # reward or prize limit names it, whatever the kind's shape.
            stmt = stmt.where(cast(Activity.config, Text).contains(str(f.prize_id)))
        return await paginate(self.session, stmt, Activity, params)

    @staticmethod
    def _status_clause(status: ActivityStatus, now: datetime | None) -> builtins.list[Any]:
        if status is ActivityStatus.draft:
            return [Activity.state == "draft"]
        if status is ActivityStatus.closed:
            return [Activity.state == "closed"]
        assert now is not None, "running/ended depend on the clock"
        if status is ActivityStatus.running:
            return [
                Activity.state == "published",
                or_(Activity.ends_at.is_(None), Activity.ends_at > now),
            ]
        return [Activity.state == "published", Activity.ends_at <= now]

    async def running_for_users(
        self, tenant_id: str, params: PageParams, now: datetime
    ) -> tuple[builtins.list[Activity], str | None]:
        """Published, not ended, standard activities: what an app user may take part in."""
        stmt = select(Activity).where(
            Activity.tenant_id == tenant_id,
            Activity.kind != "non_standard",
            *self._status_clause(ActivityStatus.running, now),
        )
        return await paginate(self.session, stmt, Activity, params)

    async def published_of_kind(self, tenant_id: str, kind: str) -> builtins.list[Activity]:
        stmt = select(Activity).where(
            Activity.tenant_id == tenant_id, Activity.kind == kind, Activity.state == "published"
        )
        return list((await self.session.scalars(stmt)).all())

    async def delete_draft_if_version(self, activity_id: uuid.UUID, version: int) -> bool:
        """Deletes the row only if it is still the draft at ``version`` the caller saw."""
        stmt = (
            delete(Activity)
            .where(
                Activity.id == activity_id,
                Activity.version == version,
                Activity.state == "draft",
            )
            .returning(Activity.id)
            .execution_options(synchronize_session=False)
        )
        return (await self.session.execute(stmt)).scalar_one_or_none() is not None

    async def update_if_version(
        self, activity_id: uuid.UUID, version: int, values: dict[str, Any]
    ) -> Activity | None:
        """Optimistic concurrency: applies only if nobody changed the row since ``version``."""
        stmt = (
            update(Activity)
            .where(Activity.id == activity_id, Activity.version == version)
            .values(**values, version=Activity.version + 1, updated_at=func.now())
            .returning(Activity)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
        return (await self.session.scalars(stmt)).one_or_none()
