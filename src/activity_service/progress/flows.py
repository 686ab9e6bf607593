"""Per-user money flows and the task metrics of SPEC §1.4: pure functions, no I/O.

A flow is one money event (deposit, withdrawal, stock transfer in/out at market value)
converted into the currency a rule is stated in, with the tenant's rates at the flow's time
(``tenants.fx``). Days are local days of the tenant's time zone. Every function sorts flows
by (time, event id) itself, so results never depend on the order events arrived in.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import NamedTuple
from zoneinfo import ZoneInfo

from activity_service.activities.rules import TaskType
from activity_service.tenants.fx import RateTable

ZERO = Decimal(0)


class FlowKind(StrEnum):
    deposit = "deposit"
    withdrawal = "withdrawal"
    stock_in = "stock_in"
    stock_out = "stock_out"


EVENT_FLOWS: dict[str, FlowKind] = {
    "cash.deposited": FlowKind.deposit,
    "cash.withdrawn": FlowKind.withdrawal,
    "stock.transferred_in": FlowKind.stock_in,
    "stock.transferred_out": FlowKind.stock_out,
}

CUMULATIVE_TASKS = frozenset(
    {
        TaskType.net_transfer_in,
        TaskType.net_deposit,
        TaskType.net_position_transfer,
        TaskType.deposit_reached,
        TaskType.transfer_reached,
        TaskType.net_asset_reached,
    }
)
FIRST_TASKS: dict[TaskType, FlowKind] = {
    TaskType.first_deposit: FlowKind.deposit,
    TaskType.first_transfer: FlowKind.stock_in,
}


class Flow(NamedTuple):
    """Ordered by time, then event id (its fields in order). A named tuple, not a frozen
    dataclass: built and sorted for every money event a run reads, at a third of the cost."""

    occurred_at: datetime
    event_id: str
    kind: FlowKind
    amount: Decimal
    currency: str


@dataclass
class Totals:
    deposits: Decimal = ZERO
    withdrawals: Decimal = ZERO
    stock_in: Decimal = ZERO
    stock_out: Decimal = ZERO

    def add(self, flow: Flow) -> None:
        if flow.kind is FlowKind.deposit:
            self.deposits += flow.amount
        elif flow.kind is FlowKind.withdrawal:
            self.withdrawals += flow.amount
        elif flow.kind is FlowKind.stock_in:
            self.stock_in += flow.amount
        else:
            self.stock_out += flow.amount


def metric(task: TaskType, totals: Totals) -> Decimal:
    """The seed's formulas (活动系统 任务类型 计算公式)."""
    net_deposit = totals.deposits - totals.withdrawals - totals.stock_out
    if task is TaskType.net_transfer_in:
        return totals.deposits + totals.stock_in - totals.withdrawals - totals.stock_out
    if task in (TaskType.net_deposit, TaskType.net_asset_reached):
        return net_deposit
    if task is TaskType.net_position_transfer:
        return totals.stock_in + min(ZERO, net_deposit)
    if task is TaskType.deposit_reached:
        return totals.deposits
    if task is TaskType.transfer_reached:
        return totals.stock_in
    raise ValueError(f"{task.value} has no cumulative metric")


def convert(flows: Iterable[Flow], currency: str, rates: RateTable) -> list[Flow]:
    """Flows in ``currency``, sorted. Raises NoRate when a flow's pair has no rate."""
    return sorted(
        f
        if f.currency == currency  # already in it: the same flow, not rebuilt
        else Flow(
            f.occurred_at,
            f.event_id,
            f.kind,
            rates.convert(f.amount, f.currency, currency, f.occurred_at),
            currency,
        )
        for f in flows
    )


def local_day(at: datetime, zone: ZoneInfo) -> date:
    return at.astimezone(zone).date()


def day_bounds(day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """[start, end) of a local day, as aware datetimes."""
    start = datetime.combine(day, time(0), zone)
    end = datetime.combine(day + timedelta(days=1), time(0), zone)
    return start, end


def totals_between(flows: Iterable[Flow], since: datetime | None, until: datetime) -> Totals:
    totals = Totals()
    for flow in flows:
        if (since is None or flow.occurred_at >= since) and flow.occurred_at < until:
            totals.add(flow)
    return totals


@dataclass(frozen=True)
class Reached:
    """When a metric first reached a threshold, and its value then."""

    achieved_at: datetime
    value: Decimal
    day: date


def cumulative_reached(
    task: TaskType,
    flows: Sequence[Flow],
    threshold: Decimal,
    *,
    since: datetime,
    until: datetime,
    zone: ZoneInfo,
) -> Reached | None:
    """The first local day whose end-of-day cumulative metric over [since, …) is ≥ threshold,
    looking at flows before ``until``. The achieved time is the last flow of that day, so the
    answer is the same whichever day the run happens on (a run that catches up after a
    missed day decides exactly what the missed run would have)."""
    totals = Totals()
    in_window = sorted(f for f in flows if since <= f.occurred_at < until)
    for index, flow in enumerate(in_window):
        totals.add(flow)
        is_last_of_day = index + 1 == len(in_window) or local_day(
            in_window[index + 1].occurred_at, zone
        ) != local_day(flow.occurred_at, zone)
        if is_last_of_day:
            value = metric(task, totals)
            if value >= threshold:
                return Reached(flow.occurred_at, value, local_day(flow.occurred_at, zone))
    return None


def cumulative_value(
    task: TaskType, flows: Sequence[Flow], *, since: datetime, until: datetime
) -> Decimal:
    return metric(task, totals_between(flows, since, until))


def first_day(flows: Sequence[Flow], kind: FlowKind, zone: ZoneInfo) -> date | None:
    """The local day of the user's first flow of ``kind`` over the whole history."""
    of_kind = sorted(f for f in flows if f.kind is kind)
    return local_day(of_kind[0].occurred_at, zone) if of_kind else None


def first_day_reached(
    task: TaskType,
    flows: Sequence[Flow],
    threshold: Decimal,
    *,
    since: datetime,
    until: datetime,
    zone: ZoneInfo,
) -> Reached | None:
    """first_deposit / first_transfer: the user's first flow of the kind in the whole
    history falls in the window [since, until), and that local day's total (within the
    window) reaches the threshold; achieved when the running total of that day crossed it."""
    kind = FIRST_TASKS[task]
    of_kind = sorted(f for f in flows if f.kind is kind)
    if not of_kind:
        return None
    first = of_kind[0]
    if not (since <= first.occurred_at < until):
        return None
    day = local_day(first.occurred_at, zone)
    running = ZERO
    for flow in of_kind:
        if local_day(flow.occurred_at, zone) != day:
            break
        if flow.occurred_at >= until:
            break
        running += flow.amount
        if running >= threshold:
            return Reached(flow.occurred_at, running, day)
    return None


@dataclass
class LockCheck:
    held: bool
    min_position: Decimal | None
    reason: str | None = None


def lock_check(
    flows: Sequence[Flow], amount: Decimal, since: datetime, until: datetime
) -> LockCheck:
    """Did the position (cumulative net flow of the whole history: deposits + stock in −
    withdrawals − stock out, already converted) stay ≥ amount from ``since`` to ``until``?
    The position at ``since`` counts (every flow at or before it), then after each flow in
    (since, until]."""
    position = ZERO
    minimum: Decimal | None = None
    for flow in sorted(flows):
        if flow.occurred_at > until:
            break
        signed = flow.amount if flow.kind in (FlowKind.deposit, FlowKind.stock_in) else -flow.amount
        position += signed
        if flow.occurred_at > since:
            if minimum is None:
                minimum = position - signed  # the position held at `since`
            minimum = min(minimum, position)
    if minimum is None:
        minimum = position
    held = minimum >= amount
    reason = None if held else f"position fell to {minimum} below the locked {amount}"
    return LockCheck(held=held, min_position=minimum, reason=reason)


def daily_totals(flows: Sequence[Flow], zone: ZoneInfo) -> dict[date, Totals]:
    """Per local day of the tenant: deposits, withdrawals, stock in and out."""
    days: dict[date, Totals] = {}
    for flow in sorted(flows):
        days.setdefault(local_day(flow.occurred_at, zone), Totals()).add(flow)
    return days
