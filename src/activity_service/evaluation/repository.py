from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from activity_service.activities.models import Activity, ActivityCatalogVersion
from activity_service.evaluation.models import (
    ActivityBudgetSpend,
    DailyRun,
    EvaluationOutcome,
    Grant,
    PrizeCapCounter,
    PrizeTotalCounter,
    ReferralCounter,
    ReferralQualification,
    RegularParticipation,
)
from service_kit.db import insert_unless_present, plan_for_parameters

_INSERT_GRANT = insert_unless_present(Grant, ("tenant_id", "grant_key"))


# A record's status follows it into its grant unless the grant already has a newer one.
# Planned for each execution: a generic plan cached while the table was small (a fresh
# database has no statistics until autovacuum's first analyze) may join the changes by a
# scan of every grant.
_SET_RECORD_STATUSES = text(
    """
UPDATE grants AS g
SET record_status = c.status, record_number = c.number, record_version = c.version,
    updated_at = now()
FROM unnest(CAST(:tenants AS text[]), CAST(:keys AS text[]), CAST(:statuses AS text[]),
            CAST(:numbers AS text[]), CAST(:versions AS integer[]))
     AS c(tenant_id, grant_key, status, number, version)
WHERE g.tenant_id = c.tenant_id AND g.grant_key = c.grant_key
  AND (c.version IS NULL OR g.record_version IS NULL OR g.record_version < c.version)
"""
)


# Grants decided together (``insert_new``): one statement whatever their number, the
# columns travel as arrays.
_INSERT_NEW_GRANTS = text(
    """
INSERT INTO grants (id, tenant_id, grant_key, activity_id, activity_code, rule_id, user_id,
                    counterpart_id, task, achieved_at, prize_id, source_event_id,
                    new_user_reward, record_status)
SELECT g.*, 'granted'
FROM unnest(CAST(:ids AS uuid[]), CAST(:tenants AS text[]), CAST(:keys AS text[]),
            CAST(:activities AS uuid[]), CAST(:codes AS text[]), CAST(:rules AS text[]),
            CAST(:users AS text[]), CAST(:counterparts AS text[]), CAST(:tasks AS text[]),
            CAST(:achieved AS timestamptz[]), CAST(:prizes AS uuid[]),
            CAST(:sources AS text[]), CAST(:new_user AS boolean[])) AS g
ON CONFLICT (tenant_id, grant_key) DO NOTHING
RETURNING tenant_id, grant_key
"""
)
_NEW_GRANT_COLUMNS = {
    "ids": "id",
    "tenants": "tenant_id",
    "keys": "grant_key",
    "activities": "activity_id",
    "codes": "activity_code",
    "rules": "rule_id",
    "users": "user_id",
    "counterparts": "counterpart_id",
    "tasks": "task",
    "achieved": "achieved_at",
    "prizes": "prize_id",
    "sources": "source_event_id",
    "new_user": "new_user_reward",
}


class GrantRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @classmethod
    def from_session(cls, session: AsyncSession) -> GrantRepository:
        return cls(session)

    async def insert_if_new(self, values: dict[str, Any]) -> Grant | None:
        """The grant when its key is new, else None. One statement built once and bound to
        the values (the hot path of evaluation: building an ORM insert per grant cost more
        than running it); the grant returned is a detached copy of the row."""
        row = (await self.session.execute(_INSERT_GRANT, values)).one_or_none()
        return None if row is None else Grant(**row._asdict())

    async def insert_new(self, rows: list[dict[str, Any]]) -> set[tuple[str, str]]:
        """``insert_if_new`` of many grants without limits in one statement (each key at
        most once in ``rows``): the (tenant, grant key) of those inserted."""
        if not rows:
            return set()
        columns = _NEW_GRANT_COLUMNS.items()
        params = {name: [row[column] for row in rows] for name, column in columns}
        result = await self.session.execute(_INSERT_NEW_GRANTS, params)
        return {(tenant_id, key) for tenant_id, key in result.all()}

    async def crediting(
        self, tenant_id: str, activity_id: uuid.UUID, invitee_id: str
    ) -> list[Grant]:
        """The inviters' grants for this invitee's tasks (the invitee is their counterpart)."""
        stmt = (
            select(Grant)
            .where(
                Grant.tenant_id == tenant_id,
                Grant.activity_id == activity_id,
                Grant.counterpart_id == invitee_id,
                Grant.user_id != invitee_id,
            )
            .order_by(Grant.created_at)
        )
        return list((await self.session.scalars(stmt)).all())

    async def exists(self, tenant_id: str, grant_key: str) -> bool:
        found = await self.session.scalar(
            select(Grant.id).where(Grant.tenant_id == tenant_id, Grant.grant_key == grant_key)
        )
        return found is not None

    async def set_record_status(
        self,
        tenant_id: str,
        grant_key: str,
        status: str,
        record_number: str,
        record_version: int | None,
    ) -> None:
        """Follow the record unless the ledger already has a newer version of it."""
        stmt = update(Grant).where(Grant.tenant_id == tenant_id, Grant.grant_key == grant_key)
        if record_version is not None:
            stmt = stmt.where(
                Grant.record_version.is_(None) | (Grant.record_version < record_version)
            )
        await self.session.execute(
            stmt.values(
                record_status=status,
                record_number=record_number,
                record_version=record_version,
                updated_at=func.now(),
            ).execution_options(synchronize_session=False)
        )

    async def set_record_statuses(
        self, changes: list[tuple[str, str, str, str, int | None]]
    ) -> None:
        """``set_record_status`` of many grants in one statement: (tenant, grant key,
        status, record number, record version) each, at most one per grant. The changes
        travel as arrays: one statement text whatever their number (a VALUES list was a new
        statement to compile and prepare per length), planned for them (see
        ``_SET_RECORD_STATUSES``)."""
        if not changes:
            return
        tenants, keys, statuses, numbers, versions = (list(c) for c in zip(*changes, strict=True))
        await plan_for_parameters(self.session)
        await self.session.execute(
            _SET_RECORD_STATUSES,
            {
                "tenants": tenants,
                "keys": keys,
                "statuses": statuses,
                "numbers": numbers,
                "versions": versions,
            },
        )

    async def take_back_cancelled(
        self, tenant_id: str, grant_key: str, at: datetime
    ) -> Grant | None:
        """Mark a grant whose record is Cancelled as having given back what it held; returns
        it the first time only, so a redelivered status message gives nothing back twice."""
        stmt = (
            update(Grant)
            .where(
                Grant.tenant_id == tenant_id,
                Grant.grant_key == grant_key,
                Grant.record_status == "cancelled",
                Grant.given_back_at.is_(None),
            )
            .values(given_back_at=at)
            .returning(Grant)
            .execution_options(synchronize_session=False)
        )
        return (await self.session.scalars(stmt)).one_or_none()

    async def release_cap_slot(
        self, tenant_id: str, activity_id: uuid.UUID, user_id: str, prize_id: uuid.UUID
    ) -> None:
        await self.session.execute(
            update(PrizeCapCounter)
            .where(
                PrizeCapCounter.tenant_id == tenant_id,
                PrizeCapCounter.activity_id == activity_id,
                PrizeCapCounter.user_id == user_id,
                PrizeCapCounter.prize_id == prize_id,
                PrizeCapCounter.count > 0,
            )
            .values(count=PrizeCapCounter.count - 1)
            .execution_options(synchronize_session=False)
        )

    async def claim_total_slot(
        self, tenant_id: str, activity_id: uuid.UUID, prize_id: uuid.UUID, total: int
    ) -> bool:
        """Take one of the ``total`` of a prize over the activity: a conditional upsert like
        ``claim_cap_slot`` (row-locked, so two grants never both take the last one)."""
        stmt = insert(PrizeTotalCounter).values(
            tenant_id=tenant_id, activity_id=activity_id, prize_id=prize_id, count=1, total=total
        )
        upsert = stmt.on_conflict_do_update(
            index_elements=["tenant_id", "activity_id", "prize_id"],
            set_={"count": PrizeTotalCounter.count + 1, "total": stmt.excluded.total},
            where=PrizeTotalCounter.count < total,
        ).returning(PrizeTotalCounter.count)
        return (await self.session.execute(upsert)).scalar_one_or_none() is not None

    async def claim_budget(
        self, tenant_id: str, activity_id: uuid.UUID, cost: Decimal, budget: Decimal
    ) -> bool:
        """Take ``cost`` from the activity's ``budget`` if what is left covers it: a
        conditional upsert (row-locked), never read-then-write."""
        if cost > budget:
            return False
        stmt = insert(ActivityBudgetSpend).values(
            tenant_id=tenant_id, activity_id=activity_id, spent=cost, budget=budget
        )
        upsert = stmt.on_conflict_do_update(
            index_elements=["tenant_id", "activity_id"],
            set_={"spent": ActivityBudgetSpend.spent + cost, "budget": budget},
            where=ActivityBudgetSpend.spent + cost <= budget,
        ).returning(ActivityBudgetSpend.spent)
        return (await self.session.execute(upsert)).scalar_one_or_none() is not None

    async def release_total_slot(
        self, tenant_id: str, activity_id: uuid.UUID, prize_id: uuid.UUID
    ) -> None:
        await self.session.execute(
            update(PrizeTotalCounter)
            .where(
                PrizeTotalCounter.tenant_id == tenant_id,
                PrizeTotalCounter.activity_id == activity_id,
                PrizeTotalCounter.prize_id == prize_id,
                PrizeTotalCounter.count > 0,
            )
            .values(count=PrizeTotalCounter.count - 1)
            .execution_options(synchronize_session=False)
        )

    async def release_budget(self, tenant_id: str, activity_id: uuid.UUID, cost: Decimal) -> None:
        await self.session.execute(
            update(ActivityBudgetSpend)
            .where(
                ActivityBudgetSpend.tenant_id == tenant_id,
                ActivityBudgetSpend.activity_id == activity_id,
            )
            .values(spent=func.greatest(ActivityBudgetSpend.spent - cost, 0))
            .execution_options(synchronize_session=False)
        )

    async def lock_user(self, tenant_id: str, user_id: str) -> None:
        """Serialise new/old-user decisions of one user until the transaction ends, so two
        new-user activities evaluated at once cannot both see "never rewarded"."""
        await self.session.execute(
            select(func.pg_advisory_xact_lock(func.hashtextextended(f"{tenant_id}/{user_id}", 0)))
        )

    async def has_new_user_reward(
        self,
        tenant_id: str,
        user_id: str,
        *,
        other_than: uuid.UUID,
        achieved_by: datetime,
        inclusive: bool,
    ) -> bool:
        """A new-user reward of another activity achieved by ``achieved_by`` (at or before
        when ``inclusive``, strictly before otherwise)."""
        stmt = select(Grant.id).where(
            Grant.tenant_id == tenant_id,
            Grant.user_id == user_id,
            Grant.new_user_reward,
            # A cancelled new-user reward was never received: the user is still new.
            Grant.record_status != "cancelled",
            Grant.activity_id != other_than,
            Grant.achieved_at <= achieved_by if inclusive else Grant.achieved_at < achieved_by,
        )
        return (await self.session.scalar(stmt.limit(1))) is not None

    async def of_activity_user(
        self, tenant_id: str, activity_id: uuid.UUID, user_id: str
    ) -> list[Grant]:
        stmt = (
            select(Grant)
            .where(
                Grant.tenant_id == tenant_id,
                Grant.activity_id == activity_id,
                Grant.user_id == user_id,
            )
            .order_by(Grant.created_at)
        )
        return list((await self.session.scalars(stmt)).all())

    async def claim_cap_slot(
        self, tenant_id: str, activity_id: uuid.UUID, user_id: str, prize_id: uuid.UUID, cap: int
    ) -> bool:
        """Take one of the ``cap`` slots of (activity, user, prize): a single conditional
        upsert, serialised by the row lock, so two evaluations can never both take the
        last slot."""
        stmt = insert(PrizeCapCounter).values(
            tenant_id=tenant_id,
            activity_id=activity_id,
            user_id=user_id,
            prize_id=prize_id,
            count=1,
        )
        upsert = stmt.on_conflict_do_update(
            index_elements=["tenant_id", "activity_id", "user_id", "prize_id"],
            set_={"count": PrizeCapCounter.count + 1},
            where=PrizeCapCounter.count < cap,
        ).returning(PrizeCapCounter.count)
        taken = (await self.session.execute(upsert)).scalar_one_or_none()
        return taken is not None and taken <= cap


class ReferralRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @classmethod
    def from_session(cls, session: AsyncSession) -> ReferralRepository:
        return cls(session)

    async def claim_regular(
        self,
        tenant_id: str,
        inviter_id: str,
        activity_id: uuid.UUID,
        ends_at: datetime,
        now: datetime,
    ) -> uuid.UUID:
        """The regular activity the inviter takes part in after this claim: this one if the
        inviter had none (or theirs has ended), else the one they already take part in."""
        stmt = insert(RegularParticipation).values(
            tenant_id=tenant_id,
            inviter_id=inviter_id,
            activity_id=activity_id,
            ends_at=ends_at,
            claimed_at=now,
        )
        upsert = stmt.on_conflict_do_update(
            index_elements=["tenant_id", "inviter_id"],
            set_={
                "activity_id": stmt.excluded.activity_id,
                "ends_at": stmt.excluded.ends_at,
                "claimed_at": stmt.excluded.claimed_at,
            },
            where=RegularParticipation.ends_at <= now,
        ).returning(RegularParticipation.activity_id)
        claimed = (await self.session.execute(upsert)).scalar_one_or_none()
        if claimed is not None:
            return claimed
        current = await self.session.scalar(
            select(RegularParticipation.activity_id).where(
                RegularParticipation.tenant_id == tenant_id,
                RegularParticipation.inviter_id == inviter_id,
            )
        )
        assert current is not None
        return current

    async def qualification(
        self, tenant_id: str, activity_id: uuid.UUID, rule_id: str, invitee_id: str
    ) -> ReferralQualification | None:
        return await self.session.scalar(
            select(ReferralQualification).where(
                ReferralQualification.tenant_id == tenant_id,
                ReferralQualification.activity_id == activity_id,
                ReferralQualification.rule_id == rule_id,
                ReferralQualification.invitee_id == invitee_id,
            )
        )

    async def next_seq(
        self, tenant_id: str, activity_id: uuid.UUID, rule_id: str, inviter_id: str
    ) -> int:
        """Atomically take the inviter's next invitee number (row-locked until commit)."""
        stmt = insert(ReferralCounter).values(
            tenant_id=tenant_id,
            activity_id=activity_id,
            rule_id=rule_id,
            inviter_id=inviter_id,
            count=1,
        )
        upsert = stmt.on_conflict_do_update(
            index_elements=["tenant_id", "activity_id", "rule_id", "inviter_id"],
            set_={"count": ReferralCounter.count + 1},
        ).returning(ReferralCounter.count)
        return int((await self.session.execute(upsert)).scalar_one())

    async def add_qualification(self, values: dict[str, Any]) -> ReferralQualification | None:
        stmt = (
            insert(ReferralQualification)
            .values(**values)
            .on_conflict_do_nothing(
                index_elements=["tenant_id", "activity_id", "rule_id", "invitee_id"]
            )
            .returning(ReferralQualification)
        )
        return (await self.session.scalars(stmt)).one_or_none()

    async def current_regular(
        self, tenant_id: str, inviter_id: str, now: datetime
    ) -> uuid.UUID | None:
        return await self.session.scalar(
            select(RegularParticipation.activity_id).where(
                RegularParticipation.tenant_id == tenant_id,
                RegularParticipation.inviter_id == inviter_id,
                RegularParticipation.ends_at > now,
            )
        )

    async def invitation_totals(self, tenant_id: str, inviter_id: str) -> dict[str, int]:
        stmt = (
            select(ReferralQualification.counted, func.count())
            .where(
                ReferralQualification.tenant_id == tenant_id,
                ReferralQualification.inviter_id == inviter_id,
            )
            .group_by(ReferralQualification.counted)
        )
        counts = {bool(c): int(n) for c, n in (await self.session.execute(stmt)).all()}
        return {"regular": counts.get(True, 0), "marketing": counts.get(False, 0)}


class EvaluationRepository:
    """Activities as the evaluation reads them, daily runs and outcomes."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @classmethod
    def from_session(cls, session: AsyncSession) -> EvaluationRepository:
        return cls(session)

    async def published(
        self, tenant_id: str, kinds: tuple[str, ...], ending_after: datetime | None = None
    ) -> list[Activity]:
        """Published activities of these kinds (whose window ends after ``ending_after`` if
        given, so long-ended campaigns are not read for every event)."""
        stmt = select(Activity).where(
            Activity.tenant_id == tenant_id,
            Activity.kind.in_(kinds),
            Activity.state == "published",
        )
        if ending_after is not None:
            stmt = stmt.where((Activity.ends_at.is_(None)) | (Activity.ends_at > ending_after))
        # Earliest published first: where only one activity may reward (a new-user reward,
        # the one regular referral activity), the older campaign wins, deterministically.
        stmt = stmt.order_by(Activity.published_at.asc().nulls_last(), Activity.id)
        return list((await self.session.scalars(stmt)).all())

    async def catalog_version(self, tenant_id: str) -> int:
        """The tenant's activity catalog counter (0 before its first activity)."""
        version = await self.session.scalar(
            select(ActivityCatalogVersion.version).where(
                ActivityCatalogVersion.tenant_id == tenant_id
            )
        )
        return int(version or 0)

    async def tenants_with_published(self) -> list[str]:
        stmt = select(Activity.tenant_id).where(Activity.state == "published").distinct()
        return list((await self.session.scalars(stmt)).all())

    async def start_run(self, tenant_id: str, day: date, now: datetime) -> DailyRun:
        stmt = insert(DailyRun).values(
            tenant_id=tenant_id, day=day, status="running", progress={}, grants=0, started_at=now
        )
        stmt = stmt.on_conflict_do_nothing(index_elements=["tenant_id", "day"])
        await self.session.execute(stmt)
        run = await self.session.scalar(
            select(DailyRun)
            .where(DailyRun.tenant_id == tenant_id, DailyRun.day == day)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        assert run is not None
        return run

    async def done_days(self, tenant_id: str, since: date) -> set[date]:
        """The days from ``since`` on whose daily run is done."""
        rows = await self.session.scalars(
            select(DailyRun.day).where(
                DailyRun.tenant_id == tenant_id, DailyRun.day >= since, DailyRun.status == "done"
            )
        )
        return set(rows.all())

    async def get_run(self, tenant_id: str, day: date) -> DailyRun | None:
        return await self.session.scalar(
            select(DailyRun)
            .where(DailyRun.tenant_id == tenant_id, DailyRun.day == day)
            .execution_options(populate_existing=True)
        )

    async def save_progress(
        self, tenant_id: str, day: date, progress: dict[str, Any], grants: int
    ) -> None:
        await self.session.execute(
            update(DailyRun)
            .where(DailyRun.tenant_id == tenant_id, DailyRun.day == day)
            .values(progress=progress, grants=DailyRun.grants + grants)
        )

    async def reopen_run(self, tenant_id: str, day: date, now: datetime) -> None:
        """Start a day's run over from its first user (an operator's re-run); a day never run
        gets its row now. Its grants stay: their keys keep the re-run from granting twice."""
        await self.start_run(tenant_id, day, now)
        await self.session.execute(
            update(DailyRun)
            .where(DailyRun.tenant_id == tenant_id, DailyRun.day == day)
            .values(status="running", progress={}, started_at=now, finished_at=None)
        )

    async def database_now(self) -> datetime:
        """The database's own clock: what ``created_at`` of later transactions is set from."""
        return await self.session.scalar(select(func.clock_timestamp()))  # type: ignore[return-value]

    async def grants_since(self, tenant_id: str, since: datetime, limit: int) -> list[Grant]:
        """The tenant's grants made in transactions begun after ``since``, oldest first."""
        stmt = (
            select(Grant)
            .where(Grant.tenant_id == tenant_id, Grant.created_at >= since)
            .order_by(Grant.created_at, Grant.grant_key)
            .limit(limit)
        )
        return list((await self.session.scalars(stmt)).all())

    async def finish_run(self, tenant_id: str, day: date, now: datetime) -> None:
        await self.session.execute(
            update(DailyRun)
            .where(DailyRun.tenant_id == tenant_id, DailyRun.day == day)
            .values(status="done", finished_at=now)
        )

    async def record_outcome(
        self,
        tenant_id: str,
        activity_id: uuid.UUID,
        user_id: str,
        rule_id: str,
        outcome: str,
        detail: str | None,
        at: datetime,
    ) -> None:
        stmt = insert(EvaluationOutcome).values(
            tenant_id=tenant_id,
            activity_id=activity_id,
            user_id=user_id,
            rule_id=rule_id,
            outcome=outcome,
            detail=(detail or "")[:500] or None,
            at=at,
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["tenant_id", "activity_id", "user_id", "rule_id"],
            set_={
                "outcome": stmt.excluded.outcome,
                "detail": stmt.excluded.detail,
                "at": stmt.excluded.at,
                "recorded_at": func.now(),
            },
        )
        await self.session.execute(stmt)

    async def record_outcomes(
        self, rows: list[tuple[str, uuid.UUID, str, str, str, str | None, datetime]]
    ) -> None:
        """Upsert many outcomes in one statement (each key at most once in ``rows``)."""
        stmt = insert(EvaluationOutcome)
        stmt = stmt.on_conflict_do_update(
            index_elements=["tenant_id", "activity_id", "user_id", "rule_id"],
            set_={
                "outcome": stmt.excluded.outcome,
                "detail": stmt.excluded.detail,
                "at": stmt.excluded.at,
                "recorded_at": func.now(),
            },
        )
        await self.session.execute(
            stmt,
            [
                {
                    "tenant_id": tenant_id,
                    "activity_id": activity_id,
                    "user_id": user_id,
                    "rule_id": rule_id,
                    "outcome": outcome,
                    "detail": (detail or "")[:500] or None,
                    "at": at,
                }
                for tenant_id, activity_id, user_id, rule_id, outcome, detail, at in rows
            ],
        )

    async def outcomes(
        self, tenant_id: str, activity_id: uuid.UUID, user_id: str
    ) -> list[EvaluationOutcome]:
        stmt = (
            select(EvaluationOutcome)
            .where(
                EvaluationOutcome.tenant_id == tenant_id,
                EvaluationOutcome.activity_id == activity_id,
                EvaluationOutcome.user_id == user_id,
            )
            .order_by(EvaluationOutcome.rule_id)
        )
        return list((await self.session.scalars(stmt)).all())
