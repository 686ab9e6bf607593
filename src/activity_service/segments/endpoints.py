from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, status

from activity_service.activities.rules import SegmentRefresh
from activity_service.segments import service
from activity_service.segments.repository import SegmentRepository
from activity_service.segments.schemas import (
    MembershipChange,
    MembershipRead,
    SegmentCreate,
    SegmentRead,
)
from activity_service.segments.upload import parse_member_ids
from service_kit.auth import ACTIVITY_READ, ACTIVITY_WRITE, Authenticator, CallerKind, Principal
from service_kit.db import SessionDep
from service_kit.deps import ClockDep, HttpDep
from service_kit.errors import PROBLEM_RESPONSES, problems
from service_kit.idempotency import IdempotencyDep
from service_kit.pagination import Page, PageParamsDep
from service_kit.routing import ServiceRoute

router = APIRouter(
    route_class=ServiceRoute, prefix="/v1/segments", tags=["segments"], responses=PROBLEM_RESPONSES
)

SegmentWriter = Annotated[
    Principal, Depends(Authenticator(kinds={CallerKind.operator}, permissions=ACTIVITY_WRITE))
]
SegmentReader = Annotated[
    Principal,
    Depends(
        Authenticator(kinds={CallerKind.operator, CallerKind.service}, permissions=ACTIVITY_READ)
    ),
]

UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": 'User ids: a JSON array (or `{"user_ids": [...]}`), a CSV file whose '
        "first column is the user id (an optional header `user_id` is skipped), or plain text "
        "with one id per line. Up to 2,000,000 ids; duplicates are ignored.",
        "content": {
            "application/json": {
                "schema": {"type": "array", "items": {"type": "string", "maxLength": 128}},
                "example": ["u-1001", "u-1002", "u-1003"],
            },
            "text/csv": {
                "schema": {"type": "string"},
                "example": "user_id\nu-1001\nu-1002\n",
            },
            "text/plain": {"schema": {"type": "string"}, "example": "u-1001\nu-1002\n"},
        },
    }
}
NOT_FOUND = {404: ["segment_not_found"]}
UPLOAD_RESPONSES = problems(
    {
        **NOT_FOUND,
        409: {"segment_is_external": "an external segment is refreshed, not uploaded"},
        415: {"unsupported_media_type": "send application/json, text/csv or text/plain"},
        422: {
            "invalid_member_upload": "the body is not a list of user ids",
            "invalid_member_id": "a user id is empty or too long",
            "upload_too_large": "too many user ids in one upload",
            "invalid_csv": "the CSV cannot be read (see `line`)",
        },
    }
)


async def _upload(
    request: Request,
    principal: Principal,
    session: Any,
    clock: Any,
    segment_id: uuid.UUID,
    mode: service.Mode,
) -> MembershipChange:
    user_ids = parse_member_ids(request.headers.get("content-type"), await request.body())
    return await service.change_members(
        session, principal.tenant_id, segment_id, user_ids, mode, clock.now()
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create a segment",
    responses=problems(
        {
            409: {"segment_name_taken": "the tenant has a segment of that name"},
            422: {"url_not_allowed": "`external_url` is not one the platform may call"},
        }
    ),
)
async def create_segment(
    body: SegmentCreate,
    principal: SegmentWriter,
    idempotency: IdempotencyDep,
    session: SessionDep,
    http: HttpDep,
) -> SegmentRead:
    """409 `segment_name_taken` when the tenant has a segment of that name; 422
    `url_not_allowed` when `external_url` is not https or does not point to a public
    address (outside development)."""
    segment = await service.create_segment(session, principal, body, http.outbound)
    return await service.to_read(session, segment, 0)


@router.get("", summary="List segments", responses=problems({}))
async def list_segments(
    principal: SegmentReader, session: SessionDep, page: PageParamsDep
) -> Page[SegmentRead]:
    repo = SegmentRepository.from_session(session)
    rows, cursor = await repo.list(principal.tenant_id, page)
    counts = await repo.member_counts([s.id for s in rows])
    return Page(
        items=[await service.to_read(session, s, counts.get(s.id, 0)) for s in rows],
        next_cursor=cursor,
    )


@router.get("/{segment_id}", summary="Get a segment", responses=problems(NOT_FOUND))
async def get_segment(
    segment_id: uuid.UUID, principal: SegmentReader, session: SessionDep
) -> SegmentRead:
    segment = await service.get_segment(session, principal.tenant_id, segment_id)
    return await service.to_read(session, segment)


@router.put(
    "/{segment_id}/members",
    summary="Replace the members (bulk upload)",
    openapi_extra=UPLOAD_BODY,
    responses=UPLOAD_RESPONSES,
)
async def replace_segment_members(
    segment_id: uuid.UUID,
    request: Request,
    principal: SegmentWriter,
    session: SessionDep,
    clock: ClockDep,
) -> MembershipChange:
    """The uploaded ids become the members; everyone else stops being one."""
    return await _upload(request, principal, session, clock, segment_id, "replace")


@router.post(
    "/{segment_id}/members:add",
    summary="Add members (bulk upload)",
    openapi_extra=UPLOAD_BODY,
    responses=UPLOAD_RESPONSES,
)
async def add_segment_members(
    segment_id: uuid.UUID,
    request: Request,
    principal: SegmentWriter,
    idempotency: IdempotencyDep,
    session: SessionDep,
    clock: ClockDep,
) -> MembershipChange:
    return await _upload(request, principal, session, clock, segment_id, "add")


@router.post(
    "/{segment_id}/members:remove",
    summary="Remove members (bulk upload)",
    openapi_extra=UPLOAD_BODY,
    responses=UPLOAD_RESPONSES,
)
async def remove_segment_members(
    segment_id: uuid.UUID,
    request: Request,
    principal: SegmentWriter,
    idempotency: IdempotencyDep,
    session: SessionDep,
    clock: ClockDep,
) -> MembershipChange:
    return await _upload(request, principal, session, clock, segment_id, "remove")


@router.get(
    "/{segment_id}/members/{user_id}",
    summary="Is a user a member (as eligibility sees it)",
    responses=problems(NOT_FOUND),
)
async def check_segment_member(
    segment_id: uuid.UUID,
    user_id: str,
    principal: SegmentReader,
    session: SessionDep,
    clock: ClockDep,
    refresh: Annotated[
        SegmentRefresh,
        Query(description="The activity's refresh delay: which snapshot to read (5m or 1d)"),
    ] = SegmentRefresh.five_minutes,
) -> MembershipRead:
    """`member` reads the snapshot of the last refresh (the last 5-minute boundary, or the
    tenant's last midnight); `member_now` reads the live set."""
    return await service.membership(
        session, principal.tenant_id, segment_id, user_id, refresh, clock.now()
    )


@router.post(
    "/{segment_id}/refresh",
    summary="Pull an external segment's members now",
    responses=problems(
        {
            **NOT_FOUND,
            409: {"segment_not_external": "only an external segment is refreshed"},
            422: {"external_segment_invalid": "the source answered pages of another shape"},
            502: {
                "external_segment_unavailable": "the source failed or is not allowed "
                "(membership unchanged)"
            },
        }
    ),
)
async def refresh_segment(
    segment_id: uuid.UUID,
    principal: SegmentWriter,
    idempotency: IdempotencyDep,
    session: SessionDep,
    clock: ClockDep,
    http: HttpDep,
) -> MembershipChange:
    """Reads every page of the source, then replaces the membership. The worker also does
    this every 5 minutes for every external segment."""
    return await service.refresh_external(
        session, principal.tenant_id, segment_id, http, clock.now()
    )
