"""Segments (SPEC §1.9): operator-maintained or externally fed user sets, and the
membership check eligibility uses (``is_member``), which honours the refresh delay."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from activity_service.activities.rules import SegmentRefresh
from activity_service.segments.models import Segment
from activity_service.segments.repository import SegmentRepository
from activity_service.segments.schemas import (
    MembershipChange,
    MembershipRead,
    SegmentCreate,
    SegmentRead,
)
from activity_service.segments.snapshot import next_refresh_after, snapshot_at
from activity_service.segments.upload import parse_external_page
from service_kit.auth import Principal
from service_kit.errors import Conflict, NotFound, ProblemError, UpstreamUnavailable
from service_kit.http import ServiceClient
from service_kit.outbound import REFUSED_DETAIL, OutboundPolicy, UrlNotAllowed

log = logging.getLogger(__name__)

Mode = Literal["replace", "add", "remove"]
MAX_EXTERNAL_PAGES = 10_000


class ExternalSegmentUnavailable(ProblemError):
    status, code, title = 502, "external_segment_unavailable", "The segment source failed"


async def tenant_zone(session: AsyncSession, tenant_id: str) -> ZoneInfo:
    """The tenant's configured time zone (tenant settings), Asia/Hong_Kong by default."""
    from activity_service.tenants.service import read_settings

    return ZoneInfo((await read_settings(session, tenant_id)).time_zone)


async def is_member(
    session: AsyncSession,
    tenant_id: str,
    segment_id: uuid.UUID,
    user_id: str,
    refresh: SegmentRefresh | str,
    now: datetime,
    tz: ZoneInfo | None = None,
) -> bool:
    """Eligibility: was the user a member in the snapshot of the last refresh (5 minutes:
    the last 5-minute boundary; 1 day: the last midnight in ``tz``, read from the tenant's
    settings when not given)? A segment of another tenant is never matched."""
    if tz is None and SegmentRefresh(refresh) is SegmentRefresh.one_day:
        tz = await tenant_zone(session, tenant_id)
    at = snapshot_at(now, refresh, tz)
    return await SegmentRepository.from_session(session).is_member_at(
        tenant_id, segment_id, user_id, at
    )


async def membership(
    session: AsyncSession,
    tenant_id: str,
    segment_id: uuid.UUID,
    user_id: str,
    refresh: SegmentRefresh,
    now: datetime,
    tz: ZoneInfo | None = None,
) -> MembershipRead:
    await get_segment(session, tenant_id, segment_id)
    repo = SegmentRepository.from_session(session)
    at = snapshot_at(now, refresh, tz or await tenant_zone(session, tenant_id))
    return MembershipRead(
        segment_id=segment_id,
        user_id=user_id,
        refresh=refresh,
        snapshot_at=at,
        member=await repo.is_member_at(tenant_id, segment_id, user_id, at),
        member_now=await repo.is_member_now(segment_id, user_id),
    )


async def get_segment(session: AsyncSession, tenant_id: str, segment_id: uuid.UUID) -> Segment:
    segment = await SegmentRepository.from_session(session).get(tenant_id, segment_id)
    if segment is None:
        raise NotFound(f"No segment {segment_id} in this tenant.", code="segment_not_found")
    return segment


async def missing_segments(
    session: AsyncSession, tenant_id: str, segment_ids: list[uuid.UUID]
) -> list[uuid.UUID]:
    """Which of ``segment_ids`` do not exist in the tenant (for activity validation)."""
    found = await SegmentRepository.from_session(session).existing_ids(tenant_id, segment_ids)
    return [s for s in segment_ids if s not in found]


async def to_read(session: AsyncSession, segment: Segment, count: int | None = None) -> SegmentRead:
    if count is None:
        count = await SegmentRepository.from_session(session).member_count(segment.id)
    return SegmentRead(
        id=segment.id,
        name=segment.name,
        description=segment.description,
        source=segment.source,
        external_url=segment.external_url,
        member_count=count,
        created_by=segment.created_by,
        last_refreshed_at=segment.last_refreshed_at,
        last_refresh_error=segment.last_refresh_error,
        created_at=segment.created_at,
        updated_at=segment.updated_at,
    )


async def create_segment(
    session: AsyncSession, principal: Principal, body: SegmentCreate, outbound: OutboundPolicy
) -> Segment:
    """422 ``url_not_allowed`` when the source is not one the platform may call."""
    if body.external_url is not None:
        await outbound.check(str(body.external_url))
    repo = SegmentRepository.from_session(session)
    if await repo.name_taken(principal.tenant_id, body.name):
        raise Conflict(f"A segment named {body.name!r} exists.", code="segment_name_taken")
    segment = Segment(
        id=uuid.uuid4(),
        tenant_id=principal.tenant_id,
        name=body.name,
        description=body.description,
        source=body.source,
        external_url=str(body.external_url) if body.external_url else None,
        created_by=principal.actor,
    )
    repo.add(segment)
    await session.flush()
    await session.refresh(segment)
    return segment


async def _apply(
    session: AsyncSession,
    segment: Segment,
    user_ids: list[str],
    mode: Mode,
    now: datetime,
    tz: ZoneInfo | None,
) -> MembershipChange:
    repo = SegmentRepository.from_session(session)
    await repo.load_upload(user_ids)
    added = removed = 0
    if mode == "replace":
        removed = await repo.remove_not_uploaded(segment.id, now)
        added = await repo.add_uploaded(segment.id, now)
    elif mode == "add":
        added = await repo.add_uploaded(segment.id, now)
    else:
        removed = await repo.remove_uploaded(segment.id, now)
    await repo.purge_history(segment.id, now)
    await repo.touch(segment.id, {"last_refreshed_at": now, "last_refresh_error": None})
    return MembershipChange(
        segment_id=segment.id,
        mode=mode,
        received=len(user_ids),
        added=added,
        removed=removed,
        member_count=await repo.member_count(segment.id),
        at=now,
        visible_for_5m_from=next_refresh_after(now, SegmentRefresh.five_minutes, tz),
        visible_for_1d_from=next_refresh_after(now, SegmentRefresh.one_day, tz),
    )


async def change_members(
    session: AsyncSession,
    tenant_id: str,
    segment_id: uuid.UUID,
    user_ids: list[str],
    mode: Mode,
    now: datetime,
    tz: ZoneInfo | None = None,
) -> MembershipChange:
    """Bulk replace / add / remove. Changes are stamped ``now``; eligibility sees them from
    the next refresh of each activity's delay."""
    segment = await SegmentRepository.from_session(session).get_for_update(tenant_id, segment_id)
    if segment is None:
        raise NotFound(f"No segment {segment_id} in this tenant.", code="segment_not_found")
    if segment.source == "external":
        raise Conflict(
            "This segment is fed by its external source; refresh it instead of uploading.",
            code="segment_is_external",
        )
    return await _apply(
        session, segment, user_ids, mode, now, tz or await tenant_zone(session, tenant_id)
    )


async def fetch_external(http: ServiceClient, url: str) -> list[str]:
    """All member ids of an external source, following ``next_cursor`` pages."""
    ids: list[str] = []
    cursor: str | None = None
    for _ in range(MAX_EXTERNAL_PAGES):
        try:
            response = await http.get_external(url, params={"cursor": cursor} if cursor else None)
        except UrlNotAllowed as exc:
            raise ExternalSegmentUnavailable(REFUSED_DETAIL) from exc
        except UpstreamUnavailable as exc:
            raise ExternalSegmentUnavailable("The segment source could not be reached.") from exc
        if response.status_code != 200:
            raise ExternalSegmentUnavailable(f"The segment source answered {response.status_code}.")
        try:
            data = response.json()
        except ValueError as exc:
            raise ExternalSegmentUnavailable("The segment source answered no JSON.") from exc
        page, cursor = parse_external_page(data)
        ids.extend(page)
        if cursor is None:
            return list(dict.fromkeys(i for i in ids if i))
    raise ExternalSegmentUnavailable(f"The segment source sent over {MAX_EXTERNAL_PAGES} pages.")


async def refresh_external(
    session: AsyncSession,
    tenant_id: str,
    segment_id: uuid.UUID,
    http: ServiceClient,
    now: datetime,
    tz: ZoneInfo | None = None,
) -> MembershipChange:
    """Pull the whole member list from the source, then replace the membership with it.
    All pages are read before anything changes, so a failing source changes nothing."""
    segment = await SegmentRepository.from_session(session).get_for_update(tenant_id, segment_id)
    if segment is None:
        raise NotFound(f"No segment {segment_id} in this tenant.", code="segment_not_found")
    if segment.source != "external" or not segment.external_url:
        raise Conflict("Only an external segment can be refreshed.", code="segment_not_external")
    user_ids = await fetch_external(http, segment.external_url)
    return await _apply(
        session, segment, user_ids, "replace", now, tz or await tenant_zone(session, tenant_id)
    )


async def note_refresh_failure(session: AsyncSession, segment_id: uuid.UUID, error: str) -> None:
    await SegmentRepository.from_session(session).touch(
        segment_id, {"last_refresh_error": error[:2000]}
    )
