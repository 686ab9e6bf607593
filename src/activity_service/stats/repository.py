"""The stats' SQL over the activity service's own tables (grant ledger, evaluation outcomes,
referral qualifications): aggregates only, no rows are loaded."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, String, Values, column, func, select, text, union, union_all, values
from sqlalchemy.ext.asyncio import AsyncSession

from activity_service.evaluation.models import (
    ActivityBudgetSpend,
    EvaluationOutcome,
    Grant,
    PrizeTotalCounter,
    ReferralQualification,
)
from activity_service.teams.models import Team, TeamAssist


class StatsRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @classmethod
    def from_session(cls, session: AsyncSession) -> StatsRepository:
        return cls(session)

    async def participants(
        self,
        tenant_id: str,
        activity_id: uuid.UUID,
        *,
        with_outcomes: bool,
        not_taking_part: Collection[str],
    ) -> int:
        """Distinct users over grants, qualifications (both sides), team initiators and
        helpers and, when asked, the latest outcomes except those saying the user could not
        take part."""
        grants = select(Grant.user_id.label("user_id")).where(
            Grant.tenant_id == tenant_id, Grant.activity_id == activity_id
        )
        rq = ReferralQualification
        of_activity = (rq.tenant_id == tenant_id, rq.activity_id == activity_id)
        parts: list[Select[Any]] = [
            grants,
            select(rq.invitee_id.label("user_id")).where(*of_activity),
            select(rq.inviter_id.label("user_id")).where(*of_activity),
            select(Team.initiator_id.label("user_id")).where(
                Team.tenant_id == tenant_id, Team.activity_id == activity_id
            ),
            select(TeamAssist.helper_id.label("user_id")).where(
                TeamAssist.tenant_id == tenant_id, TeamAssist.activity_id == activity_id
            ),
        ]
        if with_outcomes:
            parts.append(
                select(EvaluationOutcome.user_id.label("user_id")).where(
                    EvaluationOutcome.tenant_id == tenant_id,
                    EvaluationOutcome.activity_id == activity_id,
                    EvaluationOutcome.outcome.not_in(list(not_taking_part)),
                )
            )
        users = union(*parts).subquery()
        return int(await self.session.scalar(select(func.count()).select_from(users)) or 0)

    async def referral_sides(self, tenant_id: str, activity_id: uuid.UUID) -> tuple[int, int]:
        """(distinct inviters, distinct invitees) of the activity's qualifications."""
        rq = ReferralQualification
        stmt = select(
            func.count(func.distinct(rq.inviter_id)), func.count(func.distinct(rq.invitee_id))
        ).where(rq.tenant_id == tenant_id, rq.activity_id == activity_id)
        inviters, invitees = (await self.session.execute(stmt)).one()
        return int(inviters), int(invitees)

    async def team_sides(self, tenant_id: str, activity_id: uuid.UUID) -> tuple[int, int, int, int]:
        """(distinct initiators, distinct helpers, teams started, teams succeeded)."""
        teams = select(
            func.count(func.distinct(Team.initiator_id)),
            func.count(),
            func.count().filter(Team.status == "succeeded"),
        ).where(Team.tenant_id == tenant_id, Team.activity_id == activity_id)
        initiators, started, succeeded = (await self.session.execute(teams)).one()
        helpers = await self.session.scalar(
            select(func.count(func.distinct(TeamAssist.helper_id))).where(
                TeamAssist.tenant_id == tenant_id, TeamAssist.activity_id == activity_id
            )
        )
        return int(initiators), int(helpers or 0), int(started), int(succeeded)

    async def referral_completions(
        self, tenant_id: str, activity_id: uuid.UUID, rule_tasks: Mapping[str, str]
    ) -> dict[str, int]:
        """Qualifying invitees per task (a rule's qualifications carry its rule id)."""
        if not rule_tasks:
            return {}
        rq = ReferralQualification
        tasks = _rule_tasks(rule_tasks)
        stmt = (
            select(tasks.c.task, func.count(func.distinct(rq.invitee_id)))
            .select_from(rq)
            .join(tasks, tasks.c.rule_id == rq.rule_id)
            .where(rq.tenant_id == tenant_id, rq.activity_id == activity_id)
            .group_by(tasks.c.task)
        )
        return {task: int(n) for task, n in (await self.session.execute(stmt)).all()}

    async def completions(
        self,
        tenant_id: str,
        activity_id: uuid.UUID,
        rule_tasks: Mapping[str, str],
        completed_outcomes: Collection[str],
    ) -> dict[str, int]:
        """Distinct users per task: granted, or refused although the task was completed
        (their latest outcome of a rule with that task is one of ``completed_outcomes``)."""
        parts: list[Any] = [
            select(Grant.task.label("task"), Grant.user_id.label("user_id")).where(
                Grant.tenant_id == tenant_id, Grant.activity_id == activity_id
            )
        ]
        if rule_tasks and completed_outcomes:
            tasks = _rule_tasks(rule_tasks)
            parts.append(
                select(tasks.c.task.label("task"), EvaluationOutcome.user_id.label("user_id"))
                .select_from(EvaluationOutcome)
                .join(tasks, tasks.c.rule_id == EvaluationOutcome.rule_id)
                .where(
                    EvaluationOutcome.tenant_id == tenant_id,
                    EvaluationOutcome.activity_id == activity_id,
                    EvaluationOutcome.outcome.in_(list(completed_outcomes)),
                )
            )
        done = union_all(*parts).subquery()
        stmt = select(done.c.task, func.count(func.distinct(done.c.user_id))).group_by(done.c.task)
        return {task: int(n) for task, n in (await self.session.execute(stmt)).all()}

    async def grants_by_record_status(
        self, tenant_id: str, activity_id: uuid.UUID
    ) -> dict[str, int]:
        stmt = (
            select(Grant.record_status, func.count())
            .where(Grant.tenant_id == tenant_id, Grant.activity_id == activity_id)
            .group_by(Grant.record_status)
        )
        return {status: int(n) for status, n in (await self.session.execute(stmt)).all()}

    async def budget_spent(self, tenant_id: str, activity_id: uuid.UUID) -> Decimal:
        """What the activity's grants hold of its budget (cancelled ones gave theirs back)."""
        spent = await self.session.scalar(
            select(ActivityBudgetSpend.spent).where(
                ActivityBudgetSpend.tenant_id == tenant_id,
                ActivityBudgetSpend.activity_id == activity_id,
            )
        )
        return Decimal(spent or 0)

    async def prize_totals_taken(
        self, tenant_id: str, activity_id: uuid.UUID
    ) -> dict[uuid.UUID, int]:
        """Prize → how many of its total quantity the activity's grants hold."""
        stmt = select(PrizeTotalCounter.prize_id, PrizeTotalCounter.count).where(
            PrizeTotalCounter.tenant_id == tenant_id,
            PrizeTotalCounter.activity_id == activity_id,
        )
        return {prize: int(n) for prize, n in (await self.session.execute(stmt)).all()}

    async def rewarded_users(self, tenant_id: str, activity_id: uuid.UUID) -> int:
        """Distinct users with a grant whose record reward_service reported Issued."""
        stmt = select(func.count(func.distinct(Grant.user_id))).where(
            Grant.tenant_id == tenant_id,
            Grant.activity_id == activity_id,
            Grant.record_status == "issued",
        )
        return int(await self.session.scalar(stmt) or 0)


def _rule_tasks(rule_tasks: Mapping[str, str]) -> Values:
    """The activity's rule id → task map as an inline VALUES table."""
    return values(column("rule_id", String), column("task", String), name="rule_tasks").data(
        sorted(rule_tasks.items())
    )


# --------------------------------------------------------------------------- campaign report

# The users a campaign acquired or touched (its cohort). Referral: invitees who registered
# inside the window with an invite code (the registration event carries it; through a share
# link, only this activity's), and the
# invitees who qualified in this activity (also those an operator bound). Other kinds: the
# users who took part in it (grants, evaluation outcomes, teams and assists).
_REFERRAL_COHORT = """
SELECT user_id FROM events
WHERE tenant_id = :tenant_id AND type = 'user.registered'
  AND occurred_at >= :starts_at AND occurred_at < :ends_at
  AND payload ->> 'invite_code' IS NOT NULL
  -- a registration through another activity's share link belongs to that activity
  AND (payload ->> 'activity_code' IS NULL OR payload ->> 'activity_code' = :activity_code)
UNION
SELECT invitee_id FROM referral_qualifications
WHERE tenant_id = :tenant_id AND activity_id = :activity_id
"""

_PARTICIPANT_COHORT = """
SELECT user_id FROM grants WHERE tenant_id = :tenant_id AND activity_id = :activity_id
UNION
SELECT user_id FROM evaluation_outcomes
WHERE tenant_id = :tenant_id AND activity_id = :activity_id AND outcome <> ALL(:not_taking_part)
UNION
SELECT initiator_id FROM teams WHERE tenant_id = :tenant_id AND activity_id = :activity_id
UNION
SELECT helper_id FROM team_assists WHERE tenant_id = :tenant_id AND activity_id = :activity_id
"""

# A strict funnel over the cohort, in one statement: registered (ever), then account opened
# from the start of the window to now, then a first deposit (of the user's whole history)
# in that span. Each stage counts only users who passed the stages before it.
_FUNNEL = """
WITH cohort AS ({cohort}),
registered AS (
    SELECT DISTINCT c.user_id FROM cohort AS c
    WHERE EXISTS (SELECT 1 FROM events AS e WHERE e.tenant_id = :tenant_id
                  AND e.user_id = c.user_id AND e.type = 'user.registered')
),
opened AS (
    SELECT r.user_id FROM registered AS r
    WHERE EXISTS (SELECT 1 FROM events AS e WHERE e.tenant_id = :tenant_id
                  AND e.user_id = r.user_id AND e.type = 'account.opened'
                  AND e.occurred_at >= :starts_at AND e.occurred_at < :until)
),
deposited AS (
    SELECT o.user_id FROM opened AS o
    CROSS JOIN LATERAL (
        SELECT min(e.occurred_at) AS first_at FROM events AS e
        WHERE e.tenant_id = :tenant_id AND e.user_id = o.user_id AND e.type = 'cash.deposited'
    ) AS f
    WHERE f.first_at >= :starts_at AND f.first_at < :until
)
SELECT (SELECT count(DISTINCT user_id) FROM cohort), (SELECT count(*) FROM registered),
       (SELECT count(*) FROM opened), (SELECT count(*) FROM deposited)
"""

# The cohort's money flows from the start of the window to now, signed (in: deposits and
# stock transfers in; out: withdrawals and stock transfers out), summed per currency.
_NET_INFLOW = """
WITH cohort AS ({cohort})
SELECT e.payload ->> 'currency' AS currency,
       sum(CASE WHEN e.type IN ('cash.deposited', 'stock.transferred_in')
                THEN CAST(e.payload ->> 'amount' AS numeric)
                ELSE -CAST(e.payload ->> 'amount' AS numeric) END) AS net,
       count(DISTINCT e.user_id) AS users
FROM (SELECT DISTINCT user_id FROM cohort) AS c
JOIN events AS e ON e.tenant_id = :tenant_id AND e.user_id = c.user_id
WHERE e.type IN ('cash.deposited', 'cash.withdrawn', 'stock.transferred_in',
                 'stock.transferred_out')
  AND e.occurred_at >= :starts_at AND e.occurred_at < :until
GROUP BY 1 ORDER BY 1
"""


class ReportRepository:
    """The campaign report's SQL: set-based over the cohort, no rows of users loaded."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @classmethod
    def from_session(cls, session: AsyncSession) -> ReportRepository:
        return cls(session)

    @staticmethod
    def _cohort(referral: bool) -> str:
        return _REFERRAL_COHORT if referral else _PARTICIPANT_COHORT

    async def funnel(
        self, params: Mapping[str, Any], *, referral: bool
    ) -> tuple[int, int, int, int]:
        """(cohort, registered, account opened, first deposit)."""
        row = (
            await self.session.execute(
                text(_FUNNEL.format(cohort=self._cohort(referral))), dict(params)
            )
        ).one()
        return int(row[0]), int(row[1]), int(row[2]), int(row[3])

    async def net_inflow(
        self, params: Mapping[str, Any], *, referral: bool
    ) -> list[tuple[str, Any, int]]:
        """(currency, net amount, users with flows) of the cohort."""
        rows = await self.session.execute(
            text(_NET_INFLOW.format(cohort=self._cohort(referral))), dict(params)
        )
        return [(str(r[0]), r[1], int(r[2])) for r in rows.all()]
