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
from service_kit.errors import PROBLEM_RESPONSES
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

START_ERRORS = (
    "`activity_not_found` (404), `activity_not_team`, `activity_not_running`, "
    "`activity_not_started`, `team_forming_exists` (with `team_id`), "
    "`initiation_limit_reached` (with `limit`) (409), `not_in_segment` (403), "
    "`idempotency_key_reused` (422)"
)
ASSIST_ERRORS = (
    "`team_not_found` (404), `own_team`, `already_assisted`, `assist_limit_reached` (with "
    "`limit`), `team_full`, `team_not_forming` (the activity ended or was closed before the "
    "team filled), `activity_not_running`, `activity_not_started` (409), "
    "`idempotency_key_reused` (422)"
)


@activity_teams_router.post(
    "/{activity_id}/teams",
    status_code=status.HTTP_201_CREATED,
    summary="Start a team in a running team activity",
    responses={
        403: {"description": "`not_in_segment`: only the target segment may initiate"},
        404: {"description": "`activity_not_found`"},
        409: {"description": START_ERRORS},
    },
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
    responses={
        404: {"description": "`activity_not_found`"},
        409: {"description": "`activity_not_team`"},
    },
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
    responses={404: {"description": "`team_not_found` (also for a team the user is not in)"}},
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
    responses={
        404: {"description": "`team_not_found`"},
        409: {"description": ASSIST_ERRORS},
    },
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
