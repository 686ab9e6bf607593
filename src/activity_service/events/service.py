"""Event ingestion: validate, store once, acknowledge; evaluation is left to jobs.

Each stored event queues its follow-ups through the outbox in the same statement:
``activity.evaluate_event`` always, the facts referral_service needs (registration,
account opening), and the user's phone and certified enterprise for reward_service; a
batch's evaluations and registrations leave in bundles. A
replay of a known ``event_id`` with the same content is acknowledged as ``duplicate`` with
the original receipt time; with different content it is refused (``event_id_conflict``),
since silently keeping either version would hide a sender bug.
"""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from activity_service.events.models import Event
from activity_service.events.repository import EventRepository, EventWriter, FollowUp
from activity_service.events.schemas import (
    BatchItemResult,
    EventAck,
    EventBatchIn,
    EventBatchResult,
    EventIn,
    EventType,
)
from contracts import jobs
from contracts.payloads import (
    NODE_EVENT_TYPES,
    Node,
    NodeCompleted,
    NodeCompletionFact,
    NodeCompletions,
    UserProfileFact,
    UserRegistered,
)
from service_kit.auth import CallerKind, Principal
from service_kit.errors import Conflict, Forbidden, ProblemError, Unprocessable
from service_kit.outbox.bundles import bundle

_EVENT = TypeAdapter(EventIn)


def check_may_post(principal: Principal, event: EventIn) -> None:
    """Trusted back ends post business events; an app user only its own app.login."""
    if principal.kind is CallerKind.service:
        return
    if principal.kind is CallerKind.user and event.type is EventType.app_login:
        if event.user_id == principal.sub and event.app_id == principal.app_id:
            return
        raise Forbidden(
            "An app user may post app.login for themselves in their own app only.",
            code="event_not_own",
        )
    raise Forbidden(
        f"{event.type.value} may be posted by trusted back ends only.", code="event_not_allowed"
    )


def _evaluation(tenant_id: str, body: EventIn) -> FollowUp:
    return (
        "activity",
        jobs.ACTIVITY_EVALUATE_EVENT,
        {"tenant_id": tenant_id, "event_id": body.event_id},
        f"evaluate:{tenant_id}:{body.event_id}",
    )


def _registration(tenant_id: str, body: EventIn) -> FollowUp:
    fact = UserRegistered(
        tenant_id=tenant_id,
        app_id=body.app_id,
        user_id=body.user_id,
        invite_code=body.invite_code,
        registered_at=body.occurred_at,
        event_id=body.event_id,
        channel=body.channel.value if body.channel else None,
        activity_code=body.activity_code,
    )
    return (
        "referral",
        jobs.REFERRAL_USER_REGISTERED,
        fact.model_dump(mode="json"),
        f"registered:{tenant_id}:{body.event_id}",
    )


def _other_follow_ups(tenant_id: str, body: EventIn) -> list[FollowUp]:
    """The follow-ups besides the evaluation and the registration: an account opening's
    referral node, and the user's profile for reward_service."""
    messages: list[FollowUp] = []
    if body.type is EventType.account_opened:
        node_fact = NodeCompleted(
            tenant_id=tenant_id,
            user_id=body.user_id,
            node=Node.account_opening,
            completed_at=body.occurred_at,
            event_id=body.event_id,
        )
        messages.append(
            (
                "referral",
                jobs.REFERRAL_NODE_COMPLETED,
                node_fact.model_dump(mode="json"),
                f"node:{tenant_id}:{body.event_id}",
            )
        )
    if body.phone or body.type is EventType.enterprise_certified:
        # The reward service finds coupons by phone and shows the certified enterprise.
        profile = UserProfileFact(
            tenant_id=tenant_id,
            user_id=body.user_id,
            event_id=body.event_id,
            occurred_at=body.occurred_at,
            phone=body.phone,
            enterprise_id=body.enterprise_id,
            enterprise_name=body.enterprise_name,
        )
        messages.append(
            (
                "reward",
                jobs.REWARD_USER_PROFILE,
                profile.model_dump(mode="json"),
                f"profile:{tenant_id}:{body.event_id}",
            )
        )
    return messages


def follow_ups(tenant_id: str, body: EventIn) -> list[FollowUp]:
    """(queue, job, payload, job id) sent because of this event, in the same transaction:
    ``activity.evaluate_event`` always, the registration for referral_service, the rest
    (``_other_follow_ups``)."""
    messages = [_evaluation(tenant_id, body)]
    if body.type is EventType.user_registered:
        messages.append(_registration(tenant_id, body))
    return messages + _other_follow_ups(tenant_id, body)


# A batch's evaluations and registrations leave in bundles of this many
# (``service_kit.outbox.bundles``): two outbox rows per event were half of a batch's cost
# in PostgreSQL. Their consumers handle a bundle as its items, and a delivery carries no
# more items than it carried single messages.
BUNDLE_SIZE = 20


def batch_follow_ups(tenant_id: str, events: list[EventIn]) -> list[FollowUp]:
    """The follow-ups of a batch's new events, evaluations and registrations bundled."""
    registrations = [e for e in events if e.type is EventType.user_registered]
    return [
        *_bundled(tenant_id, [_evaluation(tenant_id, e) for e in events]),
        *_bundled(tenant_id, [_registration(tenant_id, e) for e in registrations]),
        *(m for e in events for m in _other_follow_ups(tenant_id, e)),
    ]


def _bundled(tenant_id: str, messages: list[FollowUp]) -> list[FollowUp]:
    """Messages of one queue and job, BUNDLE_SIZE to a message; a bundle of one is the
    message itself. A bundle's job id is its first message's, with its size."""
    out: list[FollowUp] = []
    for start in range(0, len(messages), BUNDLE_SIZE):
        chunk = messages[start : start + BUNDLE_SIZE]
        if len(chunk) == 1:
            out.append(chunk[0])
            continue
        queue, job_name, _, first_id = chunk[0]
        payload = bundle([m[2] for m in chunk], tenant_id)
        out.append((queue, job_name, payload, f"{first_id}+{len(chunk)}"))
    return out


def _row(principal: Principal, body: EventIn) -> dict[str, Any]:
    return {
        "tenant_id": principal.tenant_id,
        "event_id": body.event_id,
        "type": body.type.value,
        "user_id": body.user_id,
        "app_id": body.app_id,
        "occurred_at": body.occurred_at,
        # JSON text straight from pydantic's serializer: the statements cast it to jsonb.
        "payload": body.model_dump_json(exclude_none=True),
        "received_by": principal.actor,
    }


def same_payload(payload: dict[str, Any], body: EventIn) -> bool:
    """Compared as values: the same instant in another offset, or 100 vs 100.00, is the
    same event."""
    try:
        return _EVENT.validate_python(payload) == body
    except ValidationError:
        return False


def same_content(stored: Event, body: EventIn) -> bool:
    return same_payload(stored.payload, body)


def _conflict(event_id: str) -> Conflict:
    return Conflict(
        f"Event {event_id} was already received with different content.",
        code="event_id_conflict",
        event_id=event_id,
    )


async def ingest(connection: Any, principal: Principal, body: EventIn) -> EventAck:
    """Store one event with its follow-ups in a single statement, on an autocommit asyncpg
    connection (see ``events.db``)."""
    check_may_post(principal, body)
    repo = EventWriter(connection)
    received_at = await repo.insert_with_follow_ups(
        _row(principal, body), follow_ups(principal.tenant_id, body)
    )
    if received_at is not None:
        return EventAck(event_id=body.event_id, status="accepted", received_at=received_at)
    original = await repo.stored(principal.tenant_id, body.event_id)
    if original is None:  # pragma: no cover - a conflict means the row exists
        raise Conflict("The event is being stored concurrently; retry.", code="event_in_flight")
    payload, original_received_at = original
    if not same_payload(payload, body):
        raise _conflict(body.event_id)
    return EventAck(event_id=body.event_id, status="duplicate", received_at=original_received_at)


def _validation_problem(exc: ValidationError) -> ProblemError:
    errors = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in exc.errors()
    ]
    first = errors[0]
    where = ".".join(str(p) for p in first["loc"]) or "event"
    return Unprocessable(f"{where}: {first['msg']}", errors=errors)


def _rejected(index: int, event_id: str | None, problem: ProblemError) -> BatchItemResult:
    body = problem.to_dict()
    return BatchItemResult(
        index=index,
        event_id=event_id,
        status="rejected",
        problem={k: body[k] for k in ("code", "status", "detail", "errors") if k in body},
    )


async def ingest_batch(
    session: AsyncSession, principal: Principal, body: EventBatchIn
) -> EventBatchResult:
    """Each item is validated, authorised and stored on its own terms; the stored ones are
    written in one multi-row statement. An id repeated inside the batch is a duplicate of
    its first occurrence (or a conflict if the content differs)."""
    results: dict[int, BatchItemResult] = {}
    valid: list[tuple[int, EventIn]] = []
    first_in_batch: dict[str, tuple[int, EventIn]] = {}
    for index, raw in enumerate(body.events):
        raw_id = raw.get("event_id") if isinstance(raw, dict) else None
        event_id = raw_id if isinstance(raw_id, str) else None
        try:
            event = _EVENT.validate_python(raw)
            check_may_post(principal, event)
        except ValidationError as exc:
            results[index] = _rejected(index, event_id, _validation_problem(exc))
            continue
        except ProblemError as exc:
            results[index] = _rejected(index, event_id, exc)
            continue
        if event.event_id in first_in_batch:
            valid.append((index, event))  # resolved against its first occurrence below
            continue
        first_in_batch[event.event_id] = (index, event)
        valid.append((index, event))

    repo = EventRepository.from_session(session)
    firsts = list(first_in_batch.values())
    stored = await repo.insert_many([_row(principal, e) for _, e in firsts])
    await repo.add_messages(
        batch_follow_ups(principal.tenant_id, [e for _, e in firsts if e.event_id in stored])
    )
    known = await repo.get_many(
        principal.tenant_id, [e.event_id for _, e in firsts if e.event_id not in stored]
    )
    for index, event in valid:
        first_index, first = first_in_batch[event.event_id]
        if event.event_id in stored:
            # Stored by this batch: its first occurrence is the event, later ones replay it.
            if index == first_index:
                results[index] = BatchItemResult(
                    index=index,
                    event_id=event.event_id,
                    status="accepted",
                    received_at=stored[event.event_id],
                )
            elif first == event:
                results[index] = BatchItemResult(
                    index=index,
                    event_id=event.event_id,
                    status="duplicate",
                    received_at=stored[event.event_id],
                )
            else:
                results[index] = _rejected(index, event.event_id, _conflict(event.event_id))
            continue
        # Stored before: every occurrence is compared with the stored event on its own, so
        # an exact replay is a duplicate even next to a conflicting item of the same id.
        original = known.get(event.event_id)
        if original is None:
            results[index] = _rejected(
                index,
                event.event_id,
                Conflict("The event is being stored concurrently; retry.", code="event_in_flight"),
            )
        elif same_content(original, event):
            results[index] = BatchItemResult(
                index=index,
                event_id=event.event_id,
                status="duplicate",
                received_at=original.received_at,
            )
        else:
            results[index] = _rejected(index, event.event_id, _conflict(event.event_id))
    items = [results[i] for i in sorted(results)]
    return EventBatchResult(
        accepted=sum(1 for r in items if r.status == "accepted"),
        duplicates=sum(1 for r in items if r.status == "duplicate"),
        rejected=sum(1 for r in items if r.status == "rejected"),
        items=items,
    )


async def node_completions(session: AsyncSession, tenant_id: str, user_id: str) -> NodeCompletions:
    """The referral nodes the user completed by the events stored so far. An event is
    stored before its 202 is sent, so whoever asks after the acknowledgement sees it, even
    when no job has run yet (the referral service freezes a node's inviter on this)."""
    types = [t for node_types in NODE_EVENT_TYPES.values() for t in node_types]
    first = await EventRepository.from_session(session).first_of_types(tenant_id, user_id, types)
    nodes = []
    for node, node_types in NODE_EVENT_TYPES.items():
        found = sorted(first[t] for t in node_types if t in first)
        if found:
            completed_at, event_id = found[0]
            nodes.append(
                NodeCompletionFact(node=node, completed_at=completed_at, event_id=event_id)
            )
    return NodeCompletions(user_id=user_id, nodes=nodes)
