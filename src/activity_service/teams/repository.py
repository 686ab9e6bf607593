from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from activity_service.teams.models import Team, TeamAssist, TeamLimitCounter
from service_kit.pagination import PageParams, paginate


class TeamRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @classmethod
    def from_session(cls, session: AsyncSession) -> TeamRepository:
        return cls(session)

    async def get(self, tenant_id: str, team_id: uuid.UUID, *, lock: bool = False) -> Team | None:
        stmt = select(Team).where(Team.tenant_id == tenant_id, Team.id == team_id)
        if lock:
            stmt = stmt.with_for_update()
        return (await self.session.scalars(stmt)).one_or_none()

    async def forming_of(
        self, tenant_id: str, activity_id: uuid.UUID, initiator_id: str
    ) -> Team | None:
        stmt = select(Team).where(
            Team.tenant_id == tenant_id,
            Team.activity_id == activity_id,
            Team.initiator_id == initiator_id,
            Team.status == "forming",
        )
        return (await self.session.scalars(stmt)).one_or_none()

    async def insert_forming(self, values: dict[str, Any]) -> Team | None:
        """Insert a forming team unless the initiator already has one forming in the
        activity (the partial unique index decides); None then."""
        stmt = (
            insert(Team)
            .values(**values, status="forming", helpers_count=0)
            .on_conflict_do_nothing(
                index_elements=["tenant_id", "activity_id", "initiator_id"],
                index_where=text("status = 'forming'"),
            )
            .returning(Team)
        )
        return (await self.session.scalars(stmt)).one_or_none()

    async def take_slot(self, team_id: uuid.UUID, now: datetime) -> Team | None:
        """Count one more helper, and mark the team succeeded when that fills it — one
        conditional UPDATE: of two concurrent assists on the last slot, the second re-checks
        the committed row and matches nothing. None when the team is not forming or full."""
        filled = Team.helpers_count + 1 >= Team.helpers_needed
        stmt = (
            update(Team)
            .where(
                Team.id == team_id,
                Team.status == "forming",
                Team.helpers_count < Team.helpers_needed,
            )
            .values(
                helpers_count=Team.helpers_count + 1,
                status=case((filled, "succeeded"), else_="forming"),
                completed_at=case((filled, now), else_=None),
            )
            .returning(Team)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
        return (await self.session.scalars(stmt)).one_or_none()

    async def page(
        self,
        tenant_id: str,
        activity_id: uuid.UUID,
        params: PageParams,
        *,
        initiator_id: str | None = None,
        stored_status: str | None = None,
    ) -> tuple[list[Team], str | None]:
        stmt = select(Team).where(Team.tenant_id == tenant_id, Team.activity_id == activity_id)
        if initiator_id is not None:
            stmt = stmt.where(Team.initiator_id == initiator_id)
        if stored_status is not None:
            stmt = stmt.where(Team.status == stored_status)
        return await paginate(self.session, stmt, Team, params)

    async def counts(
        self, tenant_id: str, activity_id: uuid.UUID, initiator_id: str | None = None
    ) -> dict[str, int]:
        stmt = (
            select(Team.status, func.count())
            .where(Team.tenant_id == tenant_id, Team.activity_id == activity_id)
            .group_by(Team.status)
        )
        if initiator_id is not None:
            stmt = stmt.where(Team.initiator_id == initiator_id)
        return {status: int(n) for status, n in (await self.session.execute(stmt)).all()}

    # ------------------------------------------------------------------ assists

    async def insert_assist(self, values: dict[str, Any]) -> TeamAssist | None:
        """None when this helper already helped this team (unique on team + helper)."""
        stmt = (
            insert(TeamAssist)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["team_id", "helper_id"])
            .returning(TeamAssist)
        )
        return (await self.session.scalars(stmt)).one_or_none()

    async def members(self, team_id: uuid.UUID) -> list[TeamAssist]:
        stmt = (
            select(TeamAssist)
            .where(TeamAssist.team_id == team_id)
            .order_by(TeamAssist.created_at, TeamAssist.id)
        )
        return list((await self.session.scalars(stmt)).all())

    async def is_member(self, team_id: uuid.UUID, user_id: str) -> bool:
        found = await self.session.scalar(
            select(TeamAssist.id).where(
                TeamAssist.team_id == team_id, TeamAssist.helper_id == user_id
            )
        )
        return found is not None

    async def set_assist_reward(
        self, assist_id: uuid.UUID, reward_id: str, prize_id: uuid.UUID, grant_key: str | None
    ) -> None:
        await self.session.execute(
            update(TeamAssist)
            .where(TeamAssist.id == assist_id)
            .values(helper_reward_id=reward_id, prize_id=prize_id, grant_key=grant_key)
        )

    # ------------------------------------------------------------------ limits

    async def claim_limit_slot(
        self, tenant_id: str, activity_id: uuid.UUID, user_id: str, role: str, limit: int
    ) -> bool:
        """Take one of the ``limit`` starts/assists of (activity, user, role): a single
        conditional upsert serialised by the row lock, never read-then-write."""
        stmt = insert(TeamLimitCounter).values(
            tenant_id=tenant_id, activity_id=activity_id, user_id=user_id, role=role, count=1
        )
        upsert = stmt.on_conflict_do_update(
            index_elements=["tenant_id", "activity_id", "user_id", "role"],
            set_={"count": TeamLimitCounter.count + 1, "updated_at": func.now()},
            where=TeamLimitCounter.count < limit,
        ).returning(TeamLimitCounter.count)
        taken = (await self.session.execute(upsert)).scalar_one_or_none()
        return taken is not None and taken <= limit
