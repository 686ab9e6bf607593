from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, status

from activity_service.activities import service
from activity_service.activities.repository import ActivityRepository
from activity_service.activities.rules import ActivityKind
from activity_service.activities.schemas import ActivityCreate, ActivityRead
from activity_service.prizes_client import PrizeChecker
from service_kit.auth import ACTIVITY_READ, ACTIVITY_WRITE, Authenticator, CallerKind, Principal
from service_kit.db import SessionDep
from service_kit.deps import ClockDep, HttpDep
from service_kit.errors import PROBLEM_RESPONSES, NotFound
from service_kit.pagination import Page, PageParamsDep

router = APIRouter(prefix="/v1/activities", tags=["activities"], responses=PROBLEM_RESPONSES)

ActivityWriter = Annotated[
    Principal, Depends(Authenticator(kinds={CallerKind.operator}, permissions=ACTIVITY_WRITE))
]
ActivityReader = Annotated[
    Principal, Depends(Authenticator(kinds={CallerKind.operator}, permissions=ACTIVITY_READ))
]
ActivityLookup = Annotated[
    Principal,
    Depends(
        Authenticator(kinds={CallerKind.operator, CallerKind.service}, permissions=ACTIVITY_READ)
    ),
]


def _prize_checker(request: Request, http: HttpDep) -> PrizeChecker:
    return PrizeChecker(http, request.app.state.settings.reward_url)


PrizeCheckerDep = Annotated[PrizeChecker, Depends(_prize_checker)]


@router.post("", status_code=status.HTTP_201_CREATED, summary="Create an activity")
async def create_activity(
    body: ActivityCreate,
    principal: ActivityWriter,
    session: SessionDep,
    clock: ClockDep,
    prizes: PrizeCheckerDep,
) -> ActivityRead:
    """Creates a draft; prizes named by rules are checked against reward_service."""
    activity = await service.create_activity(session, principal, body, prizes)
    return service.to_read(activity, clock.now())


@router.get("", summary="The full activity list")
async def list_activities(
    principal: ActivityReader,
    session: SessionDep,
    clock: ClockDep,
    page: PageParamsDep,
    kind: Annotated[ActivityKind | None, Query()] = None,
) -> Page[ActivityRead]:
    rows, cursor = await ActivityRepository.from_session(session).list(
        principal.tenant_id, page, kind=kind.value if kind else None
    )
    now = clock.now()
    return Page(items=[service.to_read(a, now) for a in rows], next_cursor=cursor)


@router.get("/by-code/{activity_code}", summary="Look an activity up by its code")
async def get_activity_by_code(
    activity_code: str, principal: ActivityLookup, session: SessionDep, clock: ClockDep
) -> ActivityRead:
    activity = await ActivityRepository.from_session(session).by_code(
        principal.tenant_id, activity_code
    )
    if activity is None:
        raise NotFound(f"No activity {activity_code} in this tenant.", code="activity_not_found")
    return service.to_read(activity, clock.now())


@router.get("/{activity_id}", summary="Activity details")
async def get_activity(
    activity_id: uuid.UUID, principal: ActivityReader, session: SessionDep, clock: ClockDep
) -> ActivityRead:
    activity = await service.get_activity(session, principal.tenant_id, activity_id)
    return service.to_read(activity, clock.now())


@router.post("/{activity_id}/publish", summary="Publish a draft")
async def publish_activity(
    activity_id: uuid.UUID, principal: ActivityWriter, session: SessionDep, clock: ClockDep
) -> ActivityRead:
    activity = await service.publish(session, principal.tenant_id, activity_id, clock.now())
    return service.to_read(activity, clock.now())


@router.post("/{activity_id}/close", summary="Close a draft or running activity")
async def close_activity(
    activity_id: uuid.UUID, principal: ActivityWriter, session: SessionDep, clock: ClockDep
) -> ActivityRead:
    activity = await service.close(session, principal.tenant_id, activity_id, clock.now())
    return service.to_read(activity, clock.now())
