"""Event ingestion: store once, acknowledge, and leave the evaluation to jobs."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from activity_service.db import OutboxMessage
from activity_service.events.models import Event
from activity_service.events.repository import EventRepository
from activity_service.events.schemas import EventAck, EventIn, EventType
from contracts import jobs
from contracts.payloads import Node, NodeCompleted, UserRegistered
from service_kit.auth import CallerKind, Principal
from service_kit.errors import Forbidden
from service_kit.outbox import OutboxRepository


def check_may_post(principal: Principal, event: EventIn) -> None:
    """Trusted back ends post business events; an app user only its own app.login."""
    if principal.kind is CallerKind.service:
        return
    if principal.kind is CallerKind.user and event.type is EventType.app_login:
        if event.user_id == principal.sub and event.app_id == principal.app_id:
            return
        raise Forbidden("An app user may post app.login for themselves only.")
    raise Forbidden(f"{event.type.value} may be posted by trusted back ends only.")


def _follow_ups(event: Event) -> list[tuple[str, str, dict[str, object], str]]:
    """(queue, job, payload, job id) sent because of this event, in the same transaction."""
    messages: list[tuple[str, str, dict[str, object], str]] = [
        (
            "activity",
            jobs.ACTIVITY_EVALUATE_EVENT,
            {"tenant_id": event.tenant_id, "event_id": event.event_id},
            f"evaluate:{event.tenant_id}:{event.event_id}",
        )
    ]
    if event.type == EventType.user_registered.value:
        fact = UserRegistered(
            tenant_id=event.tenant_id,
            app_id=event.app_id,
            user_id=event.user_id,
            invite_code=event.payload.get("invite_code"),
            registered_at=event.occurred_at,
            event_id=event.event_id,
        )
        messages.append(
            (
                "referral",
                jobs.REFERRAL_USER_REGISTERED,
                fact.model_dump(mode="json"),
                f"registered:{event.tenant_id}:{event.event_id}",
            )
        )
    elif event.type == EventType.account_opened.value:
        node_fact = NodeCompleted(
            tenant_id=event.tenant_id,
            user_id=event.user_id,
            node=Node.account_opening,
            completed_at=event.occurred_at,
            event_id=event.event_id,
        )
        messages.append(
            (
                "referral",
                jobs.REFERRAL_NODE_COMPLETED,
                node_fact.model_dump(mode="json"),
                f"node:{event.tenant_id}:{event.event_id}",
            )
        )
    return messages


async def ingest(session: AsyncSession, principal: Principal, body: EventIn) -> EventAck:
    check_may_post(principal, body)
    payload = body.model_dump(mode="json", exclude_none=True)
    event = await EventRepository.from_session(session).insert_if_new(
        {
            "id": uuid.uuid4(),
            "tenant_id": principal.tenant_id,
            "event_id": body.event_id,
            "type": body.type.value,
            "user_id": body.user_id,
            "app_id": body.app_id,
            "occurred_at": body.occurred_at,
            "payload": payload,
            "received_by": principal.actor,
        }
    )
    if event is None:
        original = await EventRepository.from_session(session).get(
            principal.tenant_id, body.event_id
        )
        assert original is not None
        return EventAck(
            event_id=body.event_id, status="duplicate", received_at=original.received_at
        )
    outbox = OutboxRepository.from_session(session, OutboxMessage)
    for queue, job_name, job_payload, job_id in _follow_ups(event):
        outbox.add(queue, job_name, job_payload, job_id=job_id)
    return EventAck(event_id=body.event_id, status="accepted", received_at=event.received_at)
