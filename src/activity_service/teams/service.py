"""Team activities at run time (SPEC §1.8): start a team, help a team, read teams.

Every limit is decided by the database, never by read-then-write:
- one forming team per initiator and activity: a partial unique index;
- the initiation limit and the assist limit: conditional upserts on ``team_limit_counters``;
- one assist per (team, helper): a unique key;
- the helpers needed: a conditional UPDATE that counts the helper and, on the last slot,
  marks the team succeeded in the same statement.
A refusal raises a ``ProblemError``; the request's transaction then rolls back everything
this request wrote (counter slots included).

Rewards are grants in the evaluation ledger with deterministic keys
(``activity:rule:user:team:once``), each with its ``reward.create_from_grant`` outbox message
in the same transaction: the helper's reward at the assist (the seed's 助力奖励 is what a
helper gets for helping), the initiator's (rule ``initiator``) when the team fills.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from activity_service.activities.models import Activity
from activity_service.activities.schemas import TeamConfig, parse_config
from activity_service.activities.service import get_activity
from activity_service.evaluation.models import Grant
from activity_service.evaluation.repository import EvaluationRepository
from activity_service.evaluation.service import Evaluation, write_grant
from activity_service.events.repository import EventRepository
from activity_service.segments.service import is_member
from activity_service.teams import rules
from activity_service.teams.models import Team, TeamAssist
from activity_service.teams.repository import TeamRepository
from activity_service.teams.rules import TeamStatus
from activity_service.teams.schemas import (
    AssistRead,
    TeamMember,
    TeamPage,
    TeamRead,
    TeamStats,
    TeamSummary,
)
from activity_service.tenants.service import tenant_context
from service_kit.auth import CallerKind, Principal
from service_kit.errors import Conflict, Forbidden, NotFound
from service_kit.pagination import PageParams

NUMBER_ATTEMPTS = 5


@dataclass(frozen=True)
class Started:
    team: Team


@dataclass(frozen=True)
class Assisted:
    assist: TeamAssist
    team: Team


# --------------------------------------------------------------------------- checks


async def team_activity(
    session: AsyncSession, tenant_id: str, activity_id: uuid.UUID
) -> tuple[Activity, TeamConfig]:
    activity = await get_activity(session, tenant_id, activity_id)
    if activity.kind != "team":
        raise Conflict(
            f"Activity {activity_id} is a {activity.kind} activity, not a team activity.",
            code="activity_not_team",
        )
    return activity, parse_config("team", activity.config)


def _ensure_open(activity: Activity, now: datetime) -> None:
    reason = rules.can_take_part(activity.state, activity.starts_at, activity.ends_at, now)
    if reason == "activity_not_started":
        starts = activity.starts_at.isoformat() if activity.starts_at else "later"
        raise Conflict(f"The activity starts at {starts}.", code=reason)
    if reason is not None:
        raise Conflict("The activity is not running.", code=reason)


def _over(activity: Activity, now: datetime) -> bool:
    return rules.activity_over(activity.state, activity.ends_at, now)


# --------------------------------------------------------------------------- start


async def start_team(
    session: AsyncSession,
    principal: Principal,
    activity_id: uuid.UUID,
    nickname: str | None,
    now: datetime,
) -> Started:
    """Start a team for the calling user: only members of the target segment (at the
    activity's refresh delay) may initiate; one forming team at a time; at most
    ``initiation_limit`` teams in the window when set."""
    tenant_id, user_id = principal.tenant_id, principal.sub
    activity, config = await team_activity(session, tenant_id, activity_id)
    repo = TeamRepository.from_session(session)
    _ensure_open(activity, now)
    if activity.segment_id is not None and not await is_member(
        session,
        tenant_id,
        activity.segment_id,
        user_id,
        activity.segment_refresh or "5m",
        now,
    ):
        raise Forbidden(
            "Only members of the activity's target segment may start a team.",
            code="not_in_segment",
        )
    team = await _insert_team(session, repo, activity, config, principal, nickname, now)
    if team is None:
        forming = await repo.forming_of(tenant_id, activity.id, user_id)
        raise Conflict(
            "You already have a team forming in this activity; it must succeed before you "
            "start another.",
            code="team_forming_exists",
            team_id=str(forming.id) if forming else None,
        )
    # After the insert, so a refused start leaves no slot taken (the transaction rolls back).
    if config.initiation_limit is not None and not await repo.claim_limit_slot(
        tenant_id, activity.id, user_id, rules.INITIATOR_ROLE, config.initiation_limit
    ):
        raise Conflict(
            f"You have started the {config.initiation_limit} teams this activity allows.",
            code="initiation_limit_reached",
            limit=config.initiation_limit,
        )
    return Started(team)


async def _insert_team(
    session: AsyncSession,
    repo: TeamRepository,
    activity: Activity,
    config: TeamConfig,
    principal: Principal,
    nickname: str | None,
    now: datetime,
) -> Team | None:
    values: dict[str, Any] = {
        "tenant_id": principal.tenant_id,
        "activity_id": activity.id,
        "initiator_id": principal.sub,
        "app_id": principal.app_id,
        "nickname": nickname
        or await _registered_nickname(session, principal.tenant_id, principal.sub)
        or principal.sub,
        "helpers_needed": config.helpers_needed,
        "created_at": now,
    }
    for attempt in range(NUMBER_ATTEMPTS):
        try:
            # A savepoint per try: a (rare) team number collision only redraws the number.
            async with session.begin_nested():
                return await repo.insert_forming(
                    {**values, "id": uuid.uuid4(), "number": rules.new_team_number()}
                )
        except IntegrityError as exc:
            if "number" not in str(exc.orig) or attempt == NUMBER_ATTEMPTS - 1:
                raise
    return None


async def _registered_nickname(session: AsyncSession, tenant_id: str, user_id: str) -> str | None:
    """The nickname the broker sent with the user's registration, if any (the latest)."""
    events = await EventRepository.from_session(session).of_user(
        tenant_id, user_id, ("user.registered",)
    )
    names = [e.payload.get("nickname") for e in events if e.payload.get("nickname")]
    return str(names[-1])[:64] if names else None


# --------------------------------------------------------------------------- assist


async def assist_team(
    session: AsyncSession,
    principal: Principal,
    team_id: uuid.UUID,
    now: datetime,
) -> Assisted:
    """Help a team: never one's own, never the same team twice, at most ``assist_limit``
    assists in the window when set, never beyond the helpers needed."""
    tenant_id, helper_id = principal.tenant_id, principal.sub
    repo = TeamRepository.from_session(session)
    team = await repo.get(tenant_id, team_id)
    if team is None:
        raise NotFound(f"No team {team_id} in this tenant.", code="team_not_found")
    activity, config = await team_activity(session, tenant_id, team.activity_id)
    if team.initiator_id == helper_id:
        raise Conflict("You cannot help your own team.", code="own_team")
    if team.status == "forming" and _over(activity, now):
        raise Conflict(
            "The activity is over and this team did not fill in time.", code="team_not_forming"
        )
    _ensure_open(activity, now)
    if team.status == "succeeded":
        raise Conflict("This team already has all the helpers it needs.", code="team_full")
    reward = await _helper_reward(session, activity, config, helper_id, now)

    assist = await repo.insert_assist(
        {
            "id": uuid.uuid4(),
            "tenant_id": tenant_id,
            "team_id": team.id,
            "activity_id": activity.id,
            "helper_id": helper_id,
            "created_at": now,
        }
    )
    if assist is None:
        raise Conflict("You have already helped this team.", code="already_assisted")
    if config.assist_limit is not None and not await repo.claim_limit_slot(
        tenant_id, activity.id, helper_id, rules.HELPER_ROLE, config.assist_limit
    ):
        raise Conflict(
            f"You have made the {config.assist_limit} assists this activity allows.",
            code="assist_limit_reached",
            limit=config.assist_limit,
        )
    counted = await repo.take_slot(team.id, now)
    if counted is None:
        raise Conflict("This team already has all the helpers it needs.", code="team_full")

    if reward is not None:
        reward_id, prize_id = reward
        grant = await _write_grant(
            session,
            activity,
            rule_id=reward_id,
            prize_id=prize_id,
            task=rules.HELPER_TASK,
            user_id=helper_id,
            app_id=principal.app_id,
            team_id=team.id,
            at=now,
        )
        await repo.set_assist_reward(
            assist.id, reward_id, prize_id, grant.grant_key if grant else None
        )
        assist.helper_reward_id, assist.prize_id = reward_id, prize_id
    elif config.helper_rewards:  # explain why this helper earned nothing
        await EvaluationRepository.from_session(session).record_outcome(
            tenant_id,
            activity.id,
            helper_id,
            "helper",
            "not_in_segment",
            "no helper reward segment contains the helper",
            now,
        )
    if counted.status == "succeeded":
        await _write_grant(
            session,
            activity,
            rule_id=rules.INITIATOR_RULE_ID,
            prize_id=config.initiator_prize_id,
            task=rules.INITIATOR_TASK,
            user_id=counted.initiator_id,
            app_id=counted.app_id,
            team_id=team.id,
            at=now,
        )
    return Assisted(assist, counted)


async def _helper_reward(
    session: AsyncSession, activity: Activity, config: TeamConfig, helper_id: str, now: datetime
) -> tuple[str, uuid.UUID] | None:
    """The first helper reward whose segment the helper is in (null segment = all users),
    read at the activity's refresh delay like every eligibility check."""
    for reward in config.helper_rewards:
        if reward.segment_id is None or await is_member(
            session,
            activity.tenant_id,
            reward.segment_id,
            helper_id,
            activity.segment_refresh or "5m",
            now,
        ):
            return reward.id, reward.prize_id
    return None


async def _write_grant(
    session: AsyncSession,
    activity: Activity,
    *,
    rule_id: str,
    prize_id: uuid.UUID,
    task: str,
    user_id: str,
    app_id: str | None,
    team_id: uuid.UUID,
    at: datetime,
) -> Grant | None:
    """One grant per (activity, rule, user, team), with its outbox message, within the
    activity's budget and prize totals like every other grant (``evaluation.write_grant``);
    None when it already exists or a limit refused it (the outcome says which)."""
    ev = Evaluation(
        session=session,
        tenant=await tenant_context(session, activity.tenant_id),
        now=at,
        referral=None,
    )
    grant, _ = await write_grant(
        ev,
        activity,
        rule_id=rule_id,
        prize_id=str(prize_id),
        task=task,
        achieved_at=at,
        user_id=user_id,
        app_id=app_id,
        counterpart_id=str(team_id),
    )
    return grant


# --------------------------------------------------------------------------- read


async def get_team(
    session: AsyncSession, principal: Principal, team_id: uuid.UUID
) -> tuple[Team, Activity]:
    """Operators see every team of their tenant; an app user only a team they started or
    helped (any other is reported as not found, so team ids reveal nothing)."""
    repo = TeamRepository.from_session(session)
    team = await repo.get(principal.tenant_id, team_id)
    missing = NotFound(f"No team {team_id} in this tenant.", code="team_not_found")
    if team is None:
        raise missing
    if (
        principal.kind is CallerKind.user
        and team.initiator_id != principal.sub
        and not await repo.is_member(team.id, principal.sub)
    ):
        raise missing
    activity = await get_activity(session, principal.tenant_id, team.activity_id)
    return team, activity


def summary(team: Team, activity: Activity, language: str, now: datetime) -> TeamSummary:
    return TeamSummary(
        id=team.id,
        number=team.number,
        activity_id=team.activity_id,
        status=rules.team_status(team.status, _over(activity, now)),
        name=rules.team_name(team.nickname, language),
        initiator_id=team.initiator_id,
        helpers=team.helpers_count,
        helpers_needed=team.helpers_needed,
        size=rules.size(team.helpers_count, team.helpers_needed),
        created_at=team.created_at,
        completed_at=team.completed_at,
    )


async def read_team(
    session: AsyncSession, team: Team, activity: Activity, language: str, now: datetime
) -> TeamRead:
    members = await TeamRepository.from_session(session).members(team.id)
    return TeamRead(
        **summary(team, activity, language, now).model_dump(),
        members=[TeamMember(helper_id=m.helper_id, assisted_at=m.created_at) for m in members],
    )


async def read_assist(
    session: AsyncSession, assisted: Assisted, language: str, now: datetime
) -> AssistRead:
    activity = await get_activity(session, assisted.team.tenant_id, assisted.team.activity_id)
    return AssistRead(
        team=await read_team(session, assisted.team, activity, language, now),
        helper_id=assisted.assist.helper_id,
        assisted_at=assisted.assist.created_at,
        helper_prize_id=assisted.assist.prize_id,
        team_succeeded=assisted.team.status == "succeeded",
    )


async def list_teams(
    session: AsyncSession,
    principal: Principal,
    activity_id: uuid.UUID,
    params: PageParams,
    status: TeamStatus | None,
    language: str,
    now: datetime,
) -> TeamPage:
    """Operators: every team of the activity; app users: the teams they started. The stats
    cover the same scope, whatever the status filter."""
    activity, _ = await team_activity(session, principal.tenant_id, activity_id)
    over = _over(activity, now)
    initiator = principal.sub if principal.kind is CallerKind.user else None
    repo = TeamRepository.from_session(session)
    stats = TeamStats(
        **rules.stats_of(await repo.counts(principal.tenant_id, activity.id, initiator), over)
    )
    stored = rules.stored_status_for(status, over) if status is not None else None
    if status is not None and stored is None:
        return TeamPage(items=[], next_cursor=None, stats=stats)
    teams, cursor = await repo.page(
        principal.tenant_id, activity.id, params, initiator_id=initiator, stored_status=stored
    )
    return TeamPage(
        items=[summary(t, activity, language, now) for t in teams],
        next_cursor=cursor,
        stats=stats,
    )
