"""The seed's task formulas, FX conversion, day boundaries and first-day rules, as tables."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from activity_service.activities.rules import TaskType
from activity_service.progress.flows import (
    Flow,
    FlowKind,
    Totals,
    cumulative_reached,
    day_bounds,
    first_day_reached,
    local_day,
    lock_check,
    metric,
)
from activity_service.tenants.fx import NoRate, RateTable

HK = ZoneInfo("Asia/Hong_Kong")
D = Decimal


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def flow(when: str, kind: str, amount: str, event_id: str | None = None) -> Flow:
    return Flow(at(when), event_id or f"e-{when}-{kind}", FlowKind(kind), D(amount), "HKD")


# deposits, withdrawals, stock in, stock out → each task's metric (seed 计算公式)
FORMULA_CASES = [
    # d, w, si, so, net_transfer_in, net_deposit, net_position_transfer, deposit, transfer
    ("10000", "2000", "5000", "1000", "12000", "7000", "5000", "10000", "5000"),
    ("1000", "3000", "5000", "0", "3000", "-2000", "3000", "1000", "5000"),
    ("0", "0", "8000", "0", "8000", "0", "8000", "0", "8000"),
    ("0", "0", "0", "4000", "-4000", "-4000", "-4000", "0", "0"),
    ("50000", "0", "0", "0", "50000", "50000", "0", "50000", "0"),
]


@pytest.mark.parametrize(("d", "w", "si", "so", "nti", "nd", "npt", "dr", "tr"), FORMULA_CASES)
def test_task_formulas(
    d: str, w: str, si: str, so: str, nti: str, nd: str, npt: str, dr: str, tr: str
) -> None:
    totals = Totals(D(d), D(w), D(si), D(so))
    assert metric(TaskType.net_transfer_in, totals) == D(nti)
    assert metric(TaskType.net_deposit, totals) == D(nd)
    assert metric(TaskType.net_asset_reached, totals) == D(nd)  # seed: same as net deposit
    assert metric(TaskType.net_position_transfer, totals) == D(npt)
    assert metric(TaskType.deposit_reached, totals) == D(dr)
    assert metric(TaskType.transfer_reached, totals) == D(tr)


def test_action_tasks_have_no_metric() -> None:
    with pytest.raises(ValueError):
        metric(TaskType.register, Totals())


def test_fx_latest_effective_rate_inverse_and_rounding() -> None:
    rates = RateTable()
    rates.add("USD", "HKD", at("2026-11-01T00:00:00+00:00"), D("7.8"))
    rates.add("USD", "HKD", at("2026-12-01T00:00:00+00:00"), D("7.75"))
    rates.add("HKD", "CNY", at("2026-11-01T00:00:00+00:00"), D("0.92"))
    # the rate effective at the flow's time
    assert rates.convert(D("100"), "USD", "HKD", at("2026-11-30T23:59:59+00:00")) == D("780.0")
    assert rates.convert(D("100"), "USD", "HKD", at("2026-12-01T00:00:00+00:00")) == D("775.00")
    # the inverse of the reverse pair, rounded half-even to 6 places
    assert rates.convert(D("100"), "CNY", "HKD", at("2026-12-01T00:00:00+00:00")) == D("108.695652")
    assert rates.convert(D("5"), "HKD", "HKD", at("2026-12-01T00:00:00+00:00")) == D("5")
    with pytest.raises(NoRate):
        rates.convert(D("1"), "USD", "HKD", at("2026-10-31T00:00:00+00:00"))
    with pytest.raises(NoRate):
        rates.convert(D("1"), "EUR", "HKD", at("2026-12-01T00:00:00+00:00"))


@pytest.mark.parametrize(
    ("utc", "local"),
    [
        ("2026-12-01T15:59:59+00:00", "2026-12-01"),
        ("2026-12-01T16:00:00+00:00", "2026-12-02"),  # HK midnight is 16:00 UTC
        ("2026-12-31T23:00:00+08:00", "2026-12-31"),
    ],
)
def test_local_day_uses_tenant_zone(utc: str, local: str) -> None:
    assert local_day(at(utc), HK).isoformat() == local
    start, end = day_bounds(local_day(at(utc), HK), HK)
    assert start <= at(utc) < end


WINDOW = (at("2026-12-01T00:00:00+08:00"), at("2027-01-01T00:00:00+08:00"))


def test_cumulative_reached_on_first_day_whose_end_of_day_metric_reaches() -> None:
    flows = [
        flow("2026-12-02T10:00:00+08:00", "deposit", "6000"),
        flow("2026-12-02T11:00:00+08:00", "withdrawal", "2000"),
        flow("2026-12-03T09:00:00+08:00", "deposit", "5000"),  # 9000 at end of Dec 3
        flow("2026-12-03T20:00:00+08:00", "deposit", "1500"),  # 10500 at end of Dec 3
        flow("2026-12-04T09:00:00+08:00", "withdrawal", "5000"),
    ]
    since, until = WINDOW
    reached = cumulative_reached(
        TaskType.net_deposit, flows, D("10000"), since=since, until=until, zone=HK
    )
    assert reached is not None
    assert reached.achieved_at == at("2026-12-03T20:00:00+08:00")
    assert reached.value == D("10500")
    # up to the end of Dec 2 only: not yet
    assert (
        cumulative_reached(
            TaskType.net_deposit,
            flows,
            D("10000"),
            since=since,
            until=at("2026-12-03T00:00:00+08:00"),
            zone=HK,
        )
        is None
    )
    # an intra-day peak does not count, only the end-of-day value
    peak = [
        flow("2026-12-05T10:00:00+08:00", "deposit", "20000"),
        flow("2026-12-05T11:00:00+08:00", "withdrawal", "15000"),
    ]
    assert (
        cumulative_reached(
            TaskType.net_deposit, peak, D("10000"), since=since, until=until, zone=HK
        )
        is None
    )


def test_flows_before_the_window_do_not_count() -> None:
    flows = [
        flow("2026-11-30T10:00:00+08:00", "deposit", "9000"),
        flow("2026-12-02T10:00:00+08:00", "deposit", "2000"),
    ]
    since, until = WINDOW
    assert (
        cumulative_reached(
            TaskType.deposit_reached, flows, D("10000"), since=since, until=until, zone=HK
        )
        is None
    )


FIRST_DEPOSIT_CASES = [
    # flows, threshold, expected achieved_at (None = not completed)
    (
        [("2026-12-02T09:00:00+08:00", "3000"), ("2026-12-02T18:00:00+08:00", "2500")],
        "5000",
        "2026-12-02T18:00:00+08:00",
    ),
    # the first day's total is what counts; the next day does not help
    (
        [("2026-12-02T09:00:00+08:00", "3000"), ("2026-12-03T09:00:00+08:00", "9000")],
        "5000",
        None,
    ),
    # the first deposit in the account's history was before the window
    (
        [("2026-11-20T09:00:00+08:00", "100"), ("2026-12-02T09:00:00+08:00", "9000")],
        "5000",
        None,
    ),
    # local day in the tenant zone: 23:30 and 00:30 HK are two days
    (
        [("2026-12-02T23:30:00+08:00", "3000"), ("2026-12-03T00:30:00+08:00", "3000")],
        "5000",
        None,
    ),
    (
        [("2026-12-02T23:30:00+08:00", "6000")],
        "5000",
        "2026-12-02T23:30:00+08:00",
    ),
]


@pytest.mark.parametrize(("rows", "threshold", "expected"), FIRST_DEPOSIT_CASES)
def test_first_deposit_rule(
    rows: list[tuple[str, str]], threshold: str, expected: str | None
) -> None:
    flows = [flow(when, "deposit", amount) for when, amount in rows]
    since, until = WINDOW
    reached = first_day_reached(
        TaskType.first_deposit, flows, D(threshold), since=since, until=until, zone=HK
    )
    assert (reached.achieved_at if reached else None) == (at(expected) if expected else None)


def test_first_transfer_looks_at_stock_in_only() -> None:
    flows = [
        flow("2026-12-02T09:00:00+08:00", "deposit", "9000"),
        flow("2026-12-04T09:00:00+08:00", "stock_in", "7000"),
    ]
    since, until = WINDOW
    reached = first_day_reached(
        TaskType.first_transfer, flows, D("5000"), since=since, until=until, zone=HK
    )
    assert reached is not None and reached.day.isoformat() == "2026-12-04"


LOCK_CASES = [
    # flows, amount, from, until, held, min_position
    (
        [("2026-12-01T10:00:00+00:00", "deposit", "10000")],
        "10000",
        "2026-12-02",
        "2026-12-30",
        True,
        "10000",
    ),
    (
        [
            ("2026-12-01T10:00:00+00:00", "deposit", "10000"),
            ("2026-12-10T10:00:00+00:00", "withdrawal", "3000"),
            ("2026-12-11T10:00:00+00:00", "deposit", "5000"),
        ],
        "10000",
        "2026-12-02",
        "2026-12-30",
        False,
        "7000",
    ),
    # a dip after the lock period does not matter
    (
        [
            ("2026-12-01T10:00:00+00:00", "stock_in", "12000"),
            ("2027-01-05T10:00:00+00:00", "stock_out", "12000"),
        ],
        "10000",
        "2026-12-02",
        "2026-12-30",
        True,
        "12000",
    ),
    # position at `from` already below
    (
        [("2026-12-01T10:00:00+00:00", "deposit", "500")],
        "1000",
        "2026-12-02",
        "2026-12-03",
        False,
        "500",
    ),
]


@pytest.mark.parametrize(("rows", "amount", "since", "until", "held", "minimum"), LOCK_CASES)
def test_lock_check(
    rows: list[tuple[str, str, str]], amount: str, since: str, until: str, held: bool, minimum: str
) -> None:
    flows = [flow(when, kind, value) for when, kind, value in rows]
    answer = lock_check(
        flows,
        D(amount),
        datetime.fromisoformat(since).replace(tzinfo=UTC),
        datetime.fromisoformat(until).replace(tzinfo=UTC),
    )
    assert answer.held is held
    assert answer.min_position == D(minimum)
    assert (answer.reason is None) is held
