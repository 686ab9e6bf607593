from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Header, Query, Request, Response, status

from activity_service.activities import service
from activity_service.activities.repository import ActivityFilters, ActivityRepository
from activity_service.activities.rules import ActivityKind, ActivityStatus, pick_language
from activity_service.activities.schemas import (
    BASIC_EXAMPLE,
    NON_STANDARD_EXAMPLE,
    REFERRAL_EXAMPLE,
    TEAM_EXAMPLE,
    ActivityCreate,
    ActivityPatch,
    ActivityRead,
    MyActivity,
)
from activity_service.audit import service as audit
from activity_service.audit.repository import AuditRepository
from activity_service.audit.schemas import AuditEntryRead
from activity_service.prizes_client import PrizeChecker
from service_kit.auth import ACTIVITY_READ, ACTIVITY_WRITE, Authenticator, CallerKind, Principal
from service_kit.db import SessionDep
from service_kit.deps import ClockDep, HttpDep
from service_kit.errors import PROBLEM_RESPONSES, NotFound, problems
from service_kit.i18n import content_language
from service_kit.idempotency import IdempotencyDep
from service_kit.pagination import Page, PageParamsDep
from service_kit.preconditions import (
    OPTIONAL_PRECONDITION_RESPONSES,
    PRECONDITION_RESPONSES,
    IfMatch,
    etag_header,
)
from service_kit.routing import ServiceRoute

router = APIRouter(
    route_class=ServiceRoute,
    prefix="/v1/activities",
    tags=["activities"],
    responses=PROBLEM_RESPONSES,
)
me_router = APIRouter(
    route_class=ServiceRoute, prefix="/v1/me", tags=["activities"], responses=PROBLEM_RESPONSES
)

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
AppUser = Annotated[Principal, Depends(Authenticator(kinds={CallerKind.user}))]


def _prize_checker(request: Request, http: HttpDep) -> PrizeChecker:
    return PrizeChecker(http, request.app.state.settings.reward_url)


PrizeCheckerDep = Annotated[PrizeChecker, Depends(_prize_checker)]

ETAG_HEADER = etag_header("activity")
# What a configuration may be refused for (``validation``, and the references and budget
# checked by the service), at creation and on every edit.
CONFIG_CODES = (
    "name_required",
    "window_invalid",
    "window_incomplete",
    "segment_refresh_required",
    "segment_not_found",
    "prize_not_found",
    "rules_required",
    "duplicate_rule_id",
    "threshold_required",
    "currency_required",
    "threshold_not_applicable",
    "enterprise_id_not_applicable",
    "lock_up_incomplete",
    "prize_required",
    "prize_not_applicable",
    "tiers_required",
    "tiers_not_applicable",
    "tier_range_invalid",
    "tier_ranges_overlap",
    "tier_ranges_gap",
    "prize_limit_invalid",
    "duplicate_prize_limit",
    "prize_limit_unknown_prize",
    "team_form_not_available",
    "helpers_needed_out_of_range",
    "limit_out_of_range",
    "prize_total_invalid",
    "duplicate_prize_total",
    "prize_total_unknown_prize",
    "budget_currency_not_base",
    "prize_cost_missing",
)
# The prizes are checked with the reward service.
PRIZES_UNREACHABLE = {"upstream_unavailable": "the reward service cannot check the prizes"}
NOT_FOUND = {404: ["activity_not_found"]}
CHANGED_MEANWHILE = "another change was saved meanwhile"


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create an activity (referral, basic, team or non-standard)",
    responses={
        201: {"headers": ETAG_HEADER},
        **problems({422: CONFIG_CODES, 503: PRIZES_UNREACHABLE}),
    },
)
async def create_activity(
    body: Annotated[
        ActivityCreate,
        Body(
            openapi_examples={
                "referral": {"summary": "Tiered referral", "value": REFERRAL_EXAMPLE},
                "basic": {"summary": "Basic with tiers and lock-up", "value": BASIC_EXAMPLE},
                "team": {"summary": "Assist-to-win team", "value": TEAM_EXAMPLE},
                "non_standard": {"summary": "Non-standard", "value": NON_STANDARD_EXAMPLE},
            }
        ),
    ],
    principal: ActivityWriter,
    idempotency: IdempotencyDep,
    session: SessionDep,
    clock: ClockDep,
    prizes: PrizeCheckerDep,
    response: Response,
) -> ActivityRead:
    """Creates a draft with generated, immutable `activity_code` and `business_code`.
    Every prize referenced is checked against reward_service, every segment locally."""
    activity = await service.create_activity(session, principal, body, prizes, clock.now())
    response.headers["ETag"] = service.etag(activity)
    return service.to_read(activity, clock.now())


@router.get(
    "",
    summary="The full activity list (standard and non-standard)",
    responses=problems({422: {"window_invalid": "`window_to` is not after `window_from`"}}),
)
async def list_activities(
    principal: ActivityLookup,
    session: SessionDep,
    clock: ClockDep,
    page: PageParamsDep,
    kind: Annotated[ActivityKind | None, Query(description="Only this kind")] = None,
    status_: Annotated[
        ActivityStatus | None,
        Query(alias="status", description="Only this status (running/ended use the clock)"),
    ] = None,
    code: Annotated[
        str | None, Query(max_length=32, description="Activity code or business code (exact)")
    ] = None,
    name: Annotated[
        str | None, Query(max_length=100, description="Part of the name, in any language")
    ] = None,
    window_from: Annotated[
        datetime | None, Query(description="Only activities whose window ends after this")
    ] = None,
    window_to: Annotated[
        datetime | None, Query(description="Only activities whose window starts before this")
    ] = None,
    prize_id: Annotated[
        uuid.UUID | None, Query(description="Only activities whose rules or limits use this prize")
    ] = None,
) -> Page[ActivityRead]:
    """Newest first. With `window_from`/`window_to`, activities whose window overlaps
    [window_from, window_to) (activities without a window are left out). Operators, and
    back ends (the reward service asks with `prize_id` before deleting a prize)."""
    filters = ActivityFilters(
        kind=kind.value if kind else None,
        status=status_,
        code=code,
        name=name,
        window_from=window_from,
        window_to=window_to,
        prize_id=prize_id,
    )
    items, cursor = await service.list_activities(
        session, principal.tenant_id, filters, page, clock.now()
    )
    return Page(items=items, next_cursor=cursor)


@router.get(
    "/by-code/{activity_code}",
    summary="Look an activity up by its code",
    responses={200: {"headers": ETAG_HEADER}, **problems(NOT_FOUND)},
)
async def get_activity_by_code(
    activity_code: str,
    principal: ActivityLookup,
    session: SessionDep,
    clock: ClockDep,
    response: Response,
) -> ActivityRead:
    activity = await ActivityRepository.from_session(session).by_code(
        principal.tenant_id, activity_code.strip().upper()
    )
    if activity is None:
        raise NotFound(f"No activity {activity_code} in this tenant.", code="activity_not_found")
    response.headers["ETag"] = service.etag(activity)
    return service.to_read(activity, clock.now())


@router.get(
    "/{activity_id}",
    summary="Activity details",
    responses={200: {"headers": ETAG_HEADER}, **problems(NOT_FOUND)},
)
async def get_activity(
    activity_id: uuid.UUID,
    principal: ActivityReader,
    session: SessionDep,
    clock: ClockDep,
    response: Response,
) -> ActivityRead:
    activity = await service.get_activity(session, principal.tenant_id, activity_id)
    response.headers["ETag"] = service.etag(activity)
    return service.to_read(activity, clock.now())


@router.patch(
    "/{activity_id}",
    summary="Edit an activity (If-Match required)",
    responses={
        200: {"headers": ETAG_HEADER},
        **PRECONDITION_RESPONSES,
        **problems(
            {
                **NOT_FOUND,
                409: {
                    "activity_not_editable": "the activity has ended or is closed",
                    "kind_frozen": "a running activity keeps its kind",
                    "reward_type_frozen": "a running activity keeps its reward type",
                    "task_types_frozen": "a running activity keeps its task types",
                    "team_form_frozen": "a running team activity keeps its form",
                },
                422: [
                    *CONFIG_CODES,
                    "rules_required_on_reward_type_change",
                    "field_not_applicable",
                    "code_immutable",
                    "ends_at_in_past",
                ],
                503: PRIZES_UNREACHABLE,
            }
        ),
    },
)
async def update_activity(
    activity_id: uuid.UUID,
    body: ActivityPatch,
    principal: ActivityWriter,
    session: SessionDep,
    clock: ClockDep,
    prizes: PrizeCheckerDep,
    response: Response,
    if_match: IfMatch = None,
) -> ActivityRead:
    """Absent fields keep their value; lists are replaced whole; the result is validated
    like a creation. A draft may change anything (a new kind or reward type needs its new
    rules in the same request); a running activity keeps its kind, reward type, team form
    and task types."""
    version = service.parse_if_match(if_match, required=True)
    activity = await service.update_activity(
        session, principal, activity_id, body, version, prizes, clock.now()
    )
    response.headers["ETag"] = service.etag(activity)
    return service.to_read(activity, clock.now())


@router.post(
    "/{activity_id}/publish",
    summary="Publish a draft",
    responses={
        200: {"headers": ETAG_HEADER},
        **OPTIONAL_PRECONDITION_RESPONSES,
        **problems(
            {
                **NOT_FOUND,
                409: {
                    "activity_not_draft": "only a draft is published",
                    "window_ended": "the window has already ended",
                    "activity_config_invalid": "the stored configuration no longer validates",
                    "version_conflict": CHANGED_MEANWHILE,
                },
                # The prizes are checked again at go-live.
                422: ["segment_not_found", "prize_not_found", "prize_cost_missing"],
                503: PRIZES_UNREACHABLE,
            }
        ),
    },
)
async def publish_activity(
    activity_id: uuid.UUID,
    principal: ActivityWriter,
    idempotency: IdempotencyDep,
    session: SessionDep,
    clock: ClockDep,
    prizes: PrizeCheckerDep,
    response: Response,
    if_match: IfMatch = None,
) -> ActivityRead:
    """Published before `starts_at` it is running but earns nothing until it starts."""
    activity = await service.publish(
        session,
        principal,
        activity_id,
        clock.now(),
        prizes,
        service.parse_if_match(if_match, required=False),
    )
    response.headers["ETag"] = service.etag(activity)
    return service.to_read(activity, clock.now())


@router.post(
    "/{activity_id}/close",
    summary="Close a draft or running activity",
    responses={
        200: {"headers": ETAG_HEADER},
        **OPTIONAL_PRECONDITION_RESPONSES,
        **problems(
            {
                **NOT_FOUND,
                409: {
                    "activity_not_closable": "the activity has ended or is closed",
                    "version_conflict": CHANGED_MEANWHILE,
                },
            }
        ),
    },
)
async def close_activity(
    activity_id: uuid.UUID,
    principal: ActivityWriter,
    idempotency: IdempotencyDep,
    session: SessionDep,
    clock: ClockDep,
    response: Response,
    if_match: IfMatch = None,
) -> ActivityRead:
    activity = await service.close(
        session,
        principal,
        activity_id,
        clock.now(),
        service.parse_if_match(if_match, required=False),
    )
    response.headers["ETag"] = service.etag(activity)
    return service.to_read(activity, clock.now())


@router.delete(
    "/{activity_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a draft",
    responses={
        **OPTIONAL_PRECONDITION_RESPONSES,
        **problems(
            {
                **NOT_FOUND,
                409: {
                    "activity_not_deletable": "only a draft is deleted",
                    "version_conflict": CHANGED_MEANWHILE,
                },
            }
        ),
    },
)
async def delete_activity(
    activity_id: uuid.UUID,
    principal: ActivityWriter,
    session: SessionDep,
    clock: ClockDep,
    if_match: IfMatch = None,
) -> None:
    """Only a draft can be deleted: it never reached a user. A published activity has
    grants, outcomes and reward records under its code, so it is closed instead. The audit
    trail (`GET …/audit`) is kept and ends with `deleted`."""
    await service.delete_draft(
        session,
        principal,
        activity_id,
        clock.now(),
        service.parse_if_match(if_match, required=False),
    )


@router.get(
    "/{activity_id}/audit",
    summary="Who changed what in an activity, and when",
    responses=problems(NOT_FOUND),
)
async def list_activity_audit(
    activity_id: uuid.UUID,
    principal: ActivityReader,
    session: SessionDep,
    page: PageParamsDep,
) -> Page[AuditEntryRead]:
    """Newest first; every creation, edit, publication, closing and deletion with
    before/after. A deleted draft's trail stays readable."""
    rows, cursor = await AuditRepository.from_session(session).list(
        principal.tenant_id, activity_id, page
    )
    if not rows and page.cursor is None:
        await service.get_activity(session, principal.tenant_id, activity_id)  # 404 if none
    return Page(items=[audit.to_read(r) for r in rows], next_cursor=cursor)


@me_router.get(
    "/activities", summary="Running activities for me, in my language", responses=problems({})
)
async def list_my_activities(
    principal: AppUser,
    session: SessionDep,
    clock: ClockDep,
    page: PageParamsDep,
    response: Response,
    accept_language: Annotated[
        str | None,
        Header(
            alias="Accept-Language",
            description="zh-Hans (zh, zh-CN), zh-Hant (zh-TW, zh-HK) or en; default en",
        ),
    ] = None,
) -> Page[MyActivity]:
    """Published standard activities that have not ended. One with a target segment is
    shown only to its members (team activities: to everyone, since anyone may help).
    A page may hold fewer items than `limit` when some were filtered out."""
    language = pick_language(accept_language)
    items, cursor = await service.my_activities(session, principal, language, page, clock.now())
    # What was served: a name missing in the wanted language falls back to another one.
    response.headers["Content-Language"] = content_language((i.language for i in items), language)
    response.headers["Vary"] = "Accept-Language"
    return Page(items=items, next_cursor=cursor)
