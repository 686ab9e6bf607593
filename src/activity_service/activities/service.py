"""Activity configuration and lifecycle (SPEC §1.1–§1.3)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from activity_service.activities import validation
from activity_service.activities.models import Activity
from activity_service.activities.repository import ActivityRepository
from activity_service.activities.rules import ActivityStatus, new_code, status_of
from activity_service.activities.schemas import ActivityCreateModel, ActivityRead
from activity_service.prizes_client import PrizeChecker
from service_kit.auth import Principal
from service_kit.errors import Conflict, NotFound


def to_read(activity: Activity, now: datetime) -> ActivityRead:
    return ActivityRead(
        id=activity.id,
        activity_code=activity.activity_code,
        business_code=activity.business_code,
        kind=activity.kind,
        name=activity.name,
        status=status_of(activity.state, activity.ends_at, now),
        starts_at=activity.starts_at,
        ends_at=activity.ends_at,
        attribute=activity.attribute,
        issuance_form=activity.issuance_form,
        review_required=activity.review_required,
        cost_type=activity.cost_type,
        remarks=activity.remarks,
        config=activity.config,
        version=activity.version,
        submitter=activity.submitter,
        published_at=activity.published_at,
        created_at=activity.created_at,
        updated_at=activity.updated_at,
    )


async def _unique_codes(repo: ActivityRepository, tenant_id: str) -> tuple[str, str]:
    for _ in range(10):
        activity_code, business_code = new_code("ACT-"), new_code("BIZ-")
        if not await repo.code_taken(tenant_id, activity_code, business_code):
            return activity_code, business_code
    raise RuntimeError("could not allocate activity codes")


async def create_activity(
    session: AsyncSession,
    principal: Principal,
    body: ActivityCreateModel,
    prizes: PrizeChecker,
) -> Activity:
    validation.check(body)
    await prizes.require_all(principal.tenant_id, validation.prize_ids(body))
    columns, config = validation.storage_of(body, version=1)
    repo = ActivityRepository.from_session(session)
    activity_code, business_code = await _unique_codes(repo, principal.tenant_id)
    activity = Activity(
        id=uuid.uuid4(),
        tenant_id=principal.tenant_id,
        activity_code=activity_code,
        business_code=business_code,
        state="draft",
        config=config,
        version=1,
        submitter=principal.actor,
        **columns,
    )
    repo.add(activity)
    await session.flush()
    await session.refresh(activity)
    return activity


async def get_activity(session: AsyncSession, tenant_id: str, activity_id: uuid.UUID) -> Activity:
    activity = await ActivityRepository.from_session(session).get(tenant_id, activity_id)
    if activity is None:
        raise NotFound(f"No activity {activity_id} in this tenant.", code="activity_not_found")
    return activity


async def publish(
    session: AsyncSession, tenant_id: str, activity_id: uuid.UUID, now: datetime
) -> Activity:
    activity = await get_activity(session, tenant_id, activity_id)
    status = status_of(activity.state, activity.ends_at, now)
    if status is not ActivityStatus.draft:
        raise Conflict(
            f"Only a draft can be published; this activity is {status.value}.",
            code="activity_not_draft",
        )
    if activity.ends_at is not None and activity.ends_at <= now:
        raise Conflict("The activity's window has already ended.", code="window_ended")
    updated = await ActivityRepository.from_session(session).update_if_version(
        activity.id, activity.version, {"state": "published", "published_at": now}
    )
    if updated is None:
        raise Conflict("The activity changed meanwhile; reload and retry.", code="version_conflict")
    return updated


async def close(
    session: AsyncSession, tenant_id: str, activity_id: uuid.UUID, now: datetime
) -> Activity:
    activity = await get_activity(session, tenant_id, activity_id)
    status = status_of(activity.state, activity.ends_at, now)
    if status not in (ActivityStatus.draft, ActivityStatus.running):
        raise Conflict(f"A {status.value} activity cannot be closed.", code="activity_not_closable")
    updated = await ActivityRepository.from_session(session).update_if_version(
        activity.id, activity.version, {"state": "closed", "closed_at": now}
    )
    if updated is None:
        raise Conflict("The activity changed meanwhile; reload and retry.", code="version_conflict")
    return updated
