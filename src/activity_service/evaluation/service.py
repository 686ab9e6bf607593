"""Evaluation of events against running activities, writing grants with their outbox
message in one transaction."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from activity_service.activities.models import Activity
from activity_service.activities.repository import ActivityRepository
from activity_service.db import OutboxMessage
from activity_service.evaluation.engine import Earned, basic_rules_earned, grant_key
from activity_service.evaluation.models import Grant
from activity_service.evaluation.repository import GrantRepository
from activity_service.events.models import Event
from activity_service.events.repository import EventRepository
from contracts import jobs
from contracts.payloads import Grant as GrantPayload
from contracts.payloads import IssuanceForm, LockUp, RecordStatusChanged
from service_kit.outbox import OutboxRepository


def _activity_name(activity: Activity) -> str | None:
    name = activity.name or {}
    return name.get("en") or name.get("zh-Hans") or name.get("zh-Hant")


async def write_grant(
    session: AsyncSession,
    activity: Activity,
    earned: Earned,
    *,
    user_id: str,
    app_id: str | None,
    counterpart_id: str | None = None,
    period: str = "once",
    source_event_id: str | None = None,
) -> Grant | None:
    """Record the decision (once per grant key) and queue the reward record's creation."""
    rule = earned.rule
    key = grant_key(str(activity.id), rule["id"], user_id, counterpart_id, period)
    payload = GrantPayload(
        tenant_id=activity.tenant_id,
        grant_key=key,
        activity_code=activity.activity_code,
        activity_name=_activity_name(activity),
        rule_id=rule["id"],
        user_id=user_id,
        app_id=app_id,
        counterpart_id=counterpart_id,
        task=earned.task.value,
        achieved_at=earned.achieved_at,
        prize_id=str(rule["prize_id"]),
        issuance_form=IssuanceForm(activity.issuance_form),
        lock_up=LockUp.model_validate(rule["lock_up"]) if rule.get("lock_up") else None,
    ).model_dump(mode="json")
    grant = await GrantRepository.from_session(session).insert_if_new(
        {
            "id": uuid.uuid4(),
            "tenant_id": activity.tenant_id,
            "grant_key": key,
            "activity_id": activity.id,
            "activity_code": activity.activity_code,
            "rule_id": rule["id"],
            "user_id": user_id,
            "counterpart_id": counterpart_id,
            "task": earned.task.value,
            "achieved_at": earned.achieved_at,
            "prize_id": uuid.UUID(str(rule["prize_id"])),
            "source_event_id": source_event_id,
            "payload": payload,
        }
    )
    if grant is not None:
        OutboxRepository.from_session(session, OutboxMessage).add(
            "reward", jobs.REWARD_CREATE_FROM_GRANT, payload, job_id=key
        )
    return grant


async def evaluate_event(session: AsyncSession, tenant_id: str, event_id: str) -> list[Grant]:
    """Grants earned by one stored event. Re-running it grants nothing new."""
    event: Event | None = await EventRepository.from_session(session).get(tenant_id, event_id)
    if event is None:
        return []
    grants = []
    for activity in await ActivityRepository.from_session(session).published_of_kind(
        tenant_id, "basic"
    ):
        for earned in basic_rules_earned(
            state=activity.state,
            starts_at=activity.starts_at,
            ends_at=activity.ends_at,
            config=activity.config,
            event_type=event.type,
            occurred_at=event.occurred_at,
            event_payload=event.payload,
        ):
            grant = await write_grant(
                session,
                activity,
                earned,
                user_id=event.user_id,
                app_id=event.app_id,
                source_event_id=event.event_id,
            )
            if grant is not None:
                grants.append(grant)
    return grants


async def follow_record_status(session: AsyncSession, change: RecordStatusChanged) -> None:
    await GrantRepository.from_session(session).set_record_status(
        change.tenant_id, change.grant_key, change.to_status, change.record_number
    )
