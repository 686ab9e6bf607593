from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, status

from activity_service.events import service
from activity_service.events.db import ingest_pool, wake_relay
from activity_service.events.schemas import EventAck, EventBatchIn, EventBatchResult, EventIn
from contracts.payloads import NodeCompletions
from service_kit.auth import ACTIVITY_READ, Authenticator, CallerKind, Principal
from service_kit.db import SessionDep
from service_kit.errors import PROBLEM_RESPONSES, problems
from service_kit.idempotency import IdempotencyDep
from service_kit.routing import ServiceRoute, answered_directly

router = APIRouter(
    route_class=ServiceRoute, prefix="/v1/events", tags=["events"], responses=PROBLEM_RESPONSES
)

users_router = APIRouter(tags=["events"], responses=PROBLEM_RESPONSES)

EventPoster = Annotated[
    Principal, Depends(Authenticator(kinds={CallerKind.service, CallerKind.user}))
]
CompletionReader = Annotated[
    Principal,
    Depends(
        Authenticator(kinds={CallerKind.operator, CallerKind.service}, permissions=ACTIVITY_READ)
    ),
]


# One event is small; a batch holds at most 1,000. Bigger bodies are refused (413) before
# they are read into memory.
EVENT_BODY_BYTES = 64 * 1024
BATCH_BODY_BYTES = 4 * 1024 * 1024


async def _limit_logins(request: Request, principal: Principal, count: int) -> None:
    """An app user's events are its logins: at most ``login_limit`` per window (each one
    may carry a new device id, which download tasks count)."""
    if principal.kind is CallerKind.user:
        await request.app.state.rate_limits.login(principal, count)


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Post a business event",
    max_body_size=EVENT_BODY_BYTES,
    responses=problems(
        {
            403: {
                "event_not_own": "an app user posts only its own events",
                "event_not_allowed": "this event type is posted by trusted back ends only",
            },
            409: {
                "event_id_conflict": "an event with this id and other content is stored",
                "event_in_flight": "the event is being stored concurrently; retry",
            },
        }
    ),
)
# The hot path: a well-formed body is decoded by the model itself and the endpoint called
# without FastAPI's per-request dependency solving (``service_kit.routing``).
@answered_directly
async def post_event(body: EventIn, principal: EventPoster, request: Request) -> EventAck:
    """Trusted back ends (service tokens) post every type; an app user may post only its own
    `app.login`, a few per minute (429 `rate_limited`). Stored once per `event_id`: a replay
    with the same content is acknowledged as `duplicate` with the original receipt time and
    changes nothing; the same id with other content is refused (409 `event_id_conflict`).
    Evaluation happens in jobs, after the acknowledgement."""
    await _limit_logins(request, principal, 1)
    pool = await ingest_pool(request)
    async with pool.acquire() as connection:
        ack = await service.ingest(connection, principal, body)
    if ack.status == "accepted":
        wake_relay(request)
    return ack


@router.post(
    "/batch",
    summary="Post up to 1,000 business events",
    max_body_size=BATCH_BODY_BYTES,
    # Each item's own problem is in its result.
    responses=problems({}),
)
async def post_event_batch(
    body: EventBatchIn,
    request: Request,
    principal: EventPoster,
    idempotency: IdempotencyDep,
    session: SessionDep,
) -> EventBatchResult:
    """Per-item results in request order: `accepted`, `duplicate`, or `rejected` with a
    problem (`validation_error`, `event_not_allowed`, `event_id_conflict`…). Items are
    independent: bad ones do not stop the others. An app user's items count as logins."""
    await _limit_logins(request, principal, len(body.events))
    return await service.ingest_batch(session, principal, body)


@users_router.get(
    "/v1/users/{user_id}/node-completions",
    summary="Referral nodes a user completed, by the events stored",
    responses=problems({}),
)
async def get_node_completions(
    user_id: Annotated[str, Path(min_length=1, max_length=128, examples=["u-2002"])],
    principal: CompletionReader,
    session: SessionDep,
) -> NodeCompletions:
    """Registration (`user.registered`), account opening (`account.opened`) and deposit
    (the first `cash.deposited` or `stock.transferred_in`), each with its earliest event.
    Read from the event log itself: an event acknowledged with 202 counts at once, before
    any job has processed it. The referral service asks this before changing an inviter."""
    return await service.node_completions(session, principal.tenant_id, user_id)
