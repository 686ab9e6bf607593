"""Per-user progress read from the stored events: money flows over the user's whole
history, and the lock-up check reward_service asks at a lock's expiry (SPEC §3.3)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from activity_service.events.repository import EventRepository
from activity_service.progress.flows import (
    EVENT_FLOWS,
    Flow,
    FlowKind,
    convert,
    daily_totals,
    first_day,
    lock_check,
)
from activity_service.progress.schemas import DailyFlow, UserFlows
from activity_service.tenants.fx import NoRate, RateTable
from activity_service.tenants.service import tenant_context
from contracts.payloads import LockCheckAnswer, LockCheckQuery
from service_kit.errors import Unprocessable


def _flows(events: Sequence[Any]) -> list[Flow]:
    """Flows of event rows (``Event`` or rows with type, event_id, occurred_at, payload)."""
    return [
        Flow(
            e.occurred_at,
            e.event_id,
            EVENT_FLOWS[e.type],
            Decimal(str(e.payload["amount"])),
            e.payload["currency"],
        )
        for e in events
    ]


async def user_flows(
    session: AsyncSession, tenant_id: str, user_id: str, until: datetime | None = None
) -> list[Flow]:
    events = await EventRepository.from_session(session).of_user(
        tenant_id, user_id, tuple(EVENT_FLOWS), until=until
    )
    return _flows(events)


async def check_lock(
    session: AsyncSession,
    tenant_id: str,
    user_id: str,
    *,
    currency: str,
    amount: Decimal,
    since: datetime,
    until: datetime,
) -> LockCheckAnswer:
    """held = the user's position (cumulative net flow: deposits + stock in − withdrawals −
    stock out, each converted into ``currency`` at its time) stayed ≥ ``amount`` over the
    whole of [since, until]."""
    _check_period(since, until)
    flows = await user_flows(session, tenant_id, user_id)
    tenant = await tenant_context(session, tenant_id)
    return _verdict(flows, tenant.rates, currency, amount, since, until)


async def check_locks(
    session: AsyncSession, tenant_id: str, checks: Sequence[LockCheckQuery]
) -> list[LockCheckAnswer]:
    """``check_lock`` for many lock-ups of one tenant (those falling due together): one
    read of the tenant's rates and one of the users' events; answers in the checks' order."""
    for check in checks:
        _check_period(check.since, check.until)
    events = await EventRepository.from_session(session).of_users(
        tenant_id, sorted({c.user_id for c in checks}), tuple(EVENT_FLOWS)
    )
    tenant = await tenant_context(session, tenant_id)
    flows = {user: _flows(found) for user, found in events.items()}
    return [
        _verdict(flows.get(c.user_id, []), tenant.rates, c.currency, c.amount, c.since, c.until)
        for c in checks
    ]


def _check_period(since: datetime, until: datetime) -> None:
    if since.tzinfo is None or until.tzinfo is None:
        raise Unprocessable("`from` and `until` need a time zone offset.", code="invalid_period")
    if until < since:
        raise Unprocessable("`until` is before `from`.", code="invalid_period")


def _verdict(
    flows: list[Flow],
    rates: RateTable,
    currency: str,
    amount: Decimal,
    since: datetime,
    until: datetime,
) -> LockCheckAnswer:
    try:
        converted = convert(flows, currency, rates)
    except NoRate as exc:
        return LockCheckAnswer(held=False, min_position=None, reason=f"no FX rate: {exc}")
    answer = lock_check(converted, amount, since, until)
    return LockCheckAnswer(held=answer.held, min_position=answer.min_position, reason=answer.reason)


async def flows_by_day(
    session: AsyncSession,
    tenant_id: str,
    user_id: str,
    *,
    currency: str | None,
    since: date | None,
    until: date | None,
) -> UserFlows:
    """The user's flows per local day (tenant time zone) converted into ``currency`` (the
    tenant's base currency by default), and the first deposit / first transfer-in days over
    the whole history."""
    tenant = await tenant_context(session, tenant_id)
    target = currency or tenant.base_currency
    flows = await user_flows(session, tenant_id, user_id)
    try:
        converted = convert(flows, target, tenant.rates)
    except NoRate as exc:
        raise Unprocessable(f"No FX rate to convert a flow: {exc}", code="no_fx_rate") from exc
    days = []
    for day, totals in sorted(daily_totals(converted, tenant.zone).items()):
        if (since and day < since) or (until and day > until):
            continue
        days.append(
            DailyFlow(
                day=day,
                deposits=totals.deposits,
                withdrawals=totals.withdrawals,
                stock_in=totals.stock_in,
                stock_out=totals.stock_out,
                net=totals.deposits + totals.stock_in - totals.withdrawals - totals.stock_out,
            )
        )
    return UserFlows(
        user_id=user_id,
        currency=target,
        time_zone=tenant.zone.key,
        first_deposit_day=first_day(flows, FlowKind.deposit, tenant.zone),
        first_transfer_day=first_day(flows, FlowKind.stock_in, tenant.zone),
        days=days,
    )
