"""Team routes (SPEC §1.8): app users start and help teams; operators and the users
concerned read them."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Header, Query, status

from activity_service.activities.rules import pick_language
from activity_service.teams import service
from activity_service.teams.rules import TeamStatus
from activity_service.teams.schemas import AssistRead, TeamPage, TeamRead, TeamStart
from service_kit.auth import ACTIVITY_READ, Authenticator, CallerKind, Principal
from service_kit.db import SessionDep
from service_kit.deps import ClockDep
from service_kit.errors import PROBLEM_RESPONSES, problems
from service_kit.idempotency import IdempotencyDep
from service_kit.pagination import PageParamsDep
from service_kit.routing import ServiceRoute

activity_teams_router = APIRouter(
    route_class=ServiceRoute, prefix="/v1/activities", tags=["teams"], responses=PROBLEM_RESPONSES
)
router = APIRouter(
    route_class=ServiceRoute, prefix="/v1/teams", tags=["teams"], responses=PROBLEM_RESPONSES
)

AppUser = Annotated[Principal, Depends(Authenticator(kinds={CallerKind.user}))]
TeamReader = Annotated[
    Principal,
    Depends(Authenticator(kinds={CallerKind.operator, CallerKind.user}, permissions=ACTIVITY_READ)),
]
AcceptLanguage = Annotated[
    str | None,
    Header(
        alias="Accept-Language",
        description="Language of the team name (`zh-Hans`, `zh-Hant`, `en`); English by default",
    ),
]

NOT_RUNNING = {
    "activity_not_running": "the activity is not running",
    "activity_not_started": "the activity has not started yet",
}


@activity_teams_router.post(
    "/{activity_id}/teams",
    status_code=status.HTTP_201_CREATED,
    summary="Start a team in a running team activity",
    responses=problems(
        {
            403: {"not_in_segment": "only the target segment may start a team"},
            404: ["activity_not_found"],
            409: {
                "activity_not_team": "not a team activity",
                **NOT_RUNNING,
                "team_forming_exists": "the user's team is still forming (see `team_id`)",
                "initiation_limit_reached": "the user started as many teams as allowed",
            },
        }
    ),
)
async def start_team(
    activity_id: uuid.UUID,
    principal: AppUser,
    idempotency: IdempotencyDep,
    session: SessionDep,
    clock: ClockDep,
    accept_language: AcceptLanguage = None,
    body: Annotated[TeamStart | None, Body()] = None,
) -> TeamRead:
    """The caller becomes the initiator. One team forms at a time per initiator: after it
    succeeds they may start the next one (up to the activity's initiation limit, if any)."""
    now = clock.now()
    started = await service.start_team(
        session,
        principal,
        activity_id,
        body.nickname if body else None,
        now,
    )
    team, activity = await service.get_team(session, principal, started.team.id)
    return await service.read_team(session, team, activity, pick_language(accept_language), now)


@activity_teams_router.get(
    "/{activity_id}/teams",
    summary="Teams of a team activity with their stats",
    responses=problems(
        {404: ["activity_not_found"], 409: {"activity_not_team": "not a team activity"}}
    ),
)
async def list_teams(
    activity_id: uuid.UUID,
    principal: TeamReader,
    session: SessionDep,
    clock: ClockDep,
    page: PageParamsDep,
    status_filter: Annotated[
        TeamStatus | None, Query(alias="status", description="forming, succeeded or failed")
    ] = None,
    accept_language: AcceptLanguage = None,
) -> TeamPage:
    """Operators (ActivityCenterFull/Read) see every team of the activity; an app user sees
    the teams they started. Newest first; `stats` counts forming, succeeded, failed and all."""
    return await service.list_teams(
        session,
        principal,
        activity_id,
        page,
        status_filter,
        pick_language(accept_language),
        clock.now(),
    )


@router.get(
    "/{team_id}",
    summary="One team with its members",
    responses=problems({404: {"team_not_found": "no such team, or the user is not in it"}}),
)
async def get_team(
    team_id: uuid.UUID,
    principal: TeamReader,
    session: SessionDep,
    clock: ClockDep,
    accept_language: AcceptLanguage = None,
) -> TeamRead:
    """Operators see any team of their tenant; an app user only a team they started or
    helped."""
    team, activity = await service.get_team(session, principal, team_id)
    return await service.read_team(
        session, team, activity, pick_language(accept_language), clock.now()
    )


@router.post(
    "/{team_id}/assists",
    status_code=status.HTTP_201_CREATED,
    summary="Help a team",
    responses=problems(
        {
            404: ["team_not_found", "activity_not_found"],
            409: {
                "own_team": "the user started this team",
                "already_assisted": "the user already helped this team",
                "assist_limit_reached": "the user helped as many teams as allowed",
                "team_full": "the team has all the helpers it needs",
                "team_not_forming": "the activity ended or was closed before the team filled",
                "activity_not_team": "not a team activity",
                **NOT_RUNNING,
            },
        }
    ),
)
async def assist_team(
    team_id: uuid.UUID,
    principal: AppUser,
    idempotency: IdempotencyDep,
    session: SessionDep,
    clock: ClockDep,
    accept_language: AcceptLanguage = None,
) -> AssistRead:
    """The caller helps the team. The helper earns the first helper reward whose segment
    they are in; the assist that fills the team earns the initiator the initiator prize."""
    now = clock.now()
    assisted = await service.assist_team(session, principal, team_id, now)
    return await service.read_assist(session, assisted, pick_language(accept_language), now)
