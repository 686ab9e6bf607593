from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BeforeValidator

from activity_service.progress import service
from activity_service.progress.schemas import UserFlows
from contracts.payloads import LockCheckAnswer, LockCheckAnswers, LockCheckBatch
from service_kit.auth import ACTIVITY_READ, Authenticator, CallerKind, Principal
from service_kit.db import SessionDep
from service_kit.errors import PROBLEM_RESPONSES, Unprocessable, problems
from service_kit.idempotency import IdempotencyDep
from service_kit.money import decimal_string, decimal_text
from service_kit.routing import ServiceRoute

router = APIRouter(
    route_class=ServiceRoute,
    prefix="/v1/positions",
    tags=["positions"],
    responses=PROBLEM_RESPONSES,
)

ServiceCaller = Annotated[Principal, Depends(Authenticator(kinds={CallerKind.service}))]
FlowReader = Annotated[
    Principal,
    Depends(
        Authenticator(kinds={CallerKind.operator, CallerKind.service}, permissions=ACTIVITY_READ)
    ),
]

INVALID_PERIOD = {"invalid_period": "`until` is before `from`, or either has no time zone offset"}


@router.get(
    "/{user_id}/daily-flows",
    summary="A user's money flows per day",
    responses=problems({422: {"no_fx_rate": "a flow cannot be converted into the currency"}}),
)
async def daily_flows(
    user_id: str,
    principal: FlowReader,
    session: SessionDep,
    currency: Annotated[
        str | None,
        Query(pattern=r"^[A-Z]{3}$", description="Default: the tenant's base currency"),
    ] = None,
    since: Annotated[date | None, Query(alias="from", description="First local day")] = None,
    until: Annotated[date | None, Query(description="Last local day (inclusive)")] = None,
) -> UserFlows:
    """Deposits, withdrawals and stock transfers in/out per local day of the tenant,
    converted with the tenant's FX rates (the latest rate effective at each flow's time),
    and the user's first deposit and first transfer-in days over their whole history:
    what the amount tasks of SPEC §1.4 are computed from. 422 `no_fx_rate` when a flow
    cannot be converted."""
    return await service.flows_by_day(
        session, principal.tenant_id, user_id, currency=currency, since=since, until=until
    )


@router.get(
    "/{user_id}/lock-check",
    summary="Did the user keep a locked amount?",
    responses=problems({422: INVALID_PERIOD}),
)
async def lock_check(
    user_id: str,
    principal: ServiceCaller,
    session: SessionDep,
    currency: Annotated[str, Query(pattern=r"^[A-Z]{3}$", examples=["HKD"])],
    amount: Annotated[
        Decimal,
        BeforeValidator(decimal_text),
        Query(gt=0, description="Locked amount, a decimal string"),
        decimal_string("10000"),
    ],
    since: Annotated[
        datetime, Query(alias="from", description="Lock start (reward arrival), with offset")
    ],
    until: Annotated[datetime, Query(description="Lock expiry, with offset")],
) -> LockCheckAnswer:
    """For reward_service at a lock's expiry (SPEC §3.3): `held` is true when the user's
    position in `currency` — deposits + stock transfers in − withdrawals − stock transfers
    out over the whole history, converted at each flow's time with the tenant's rates —
    stayed at or above `amount` from `from` to `until`. `min_position` is the lowest
    position in that period."""
    if since.tzinfo is None or until.tzinfo is None:
        raise Unprocessable("`from` and `until` need a time zone offset.", code="invalid_period")
    return await service.check_lock(
        session,
        principal.tenant_id,
        user_id,
        currency=currency,
        amount=amount,
        since=since,
        until=until,
    )


@router.post(
    "/lock-checks",
    summary="Did each user keep a locked amount? (many lock-ups)",
    responses=problems({422: INVALID_PERIOD}),
)
async def lock_checks(
    body: LockCheckBatch,
    principal: ServiceCaller,
    idempotency: IdempotencyDep,
    session: SessionDep,
) -> LockCheckAnswers:
    """The batch form of `GET /v1/positions/{user_id}/lock-check`, for reward_service
    settling the lock-ups of a tenant that fall due together (up to 500 per call): one
    answer per check, in their order, each as the single check would give it. 422
    `invalid_period` when any check's `until` is before its `from` or either has no
    offset. Reads only: a retry is harmless."""
    answers = await service.check_locks(session, principal.tenant_id, body.checks)
    return LockCheckAnswers(answers=answers)
