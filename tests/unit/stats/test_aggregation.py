"""The pure arithmetic of the activity stats: reward counts, cost conversion, per user."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from activity_service.stats.aggregation import (
    IssuedCostRow,
    cost_per_user,
    cost_summary,
    counts_from_ledger,
    counts_from_reward_service,
    rule_tasks,
)
from activity_service.tenants.fx import RateTable

AT = datetime(2026, 12, 20, tzinfo=UTC)


def rates() -> RateTable:
    table = RateTable()
    table.add("USD", "HKD", datetime(2026, 11, 1, tzinfo=UTC), Decimal("7.8"))
    table.add("USD", "HKD", datetime(2027, 1, 1, tzinfo=UTC), Decimal("9"))  # not yet
    table.add("HKD", "CNY", datetime(2026, 11, 1, tzinfo=UTC), Decimal("0.9"))
    return table


def test_reward_service_counts_keep_its_all_and_ignore_unknown_keys() -> None:
    # 锁仓中 also counts rewards issued at once whose lock runs: they are issued too, so
    # reward_service's `all` (each record once) is not the sum of the statuses.
    counts = counts_from_reward_service(
        {"activity_code": "ACT-1", "issued": 5, "failed": 1, "locked": 2, "all": 7, "x": 3}
    )
    assert (counts.source, counts.issued, counts.failed, counts.locked) == (
        "reward_service",
        5,
        1,
        2,
    )
    assert counts.all == 7 and counts.pending == 0 and counts.not_yet_recorded == 0
    # An answer without `all` is summed.
    assert counts_from_reward_service({"issued": 5, "failed": 1}).all == 6


def test_ledger_counts_keep_granted_apart_from_all() -> None:
    counts = counts_from_ledger({"granted": 3, "issued": 4, "cancelled": 1})
    assert counts.source == "grant_ledger"
    assert (counts.issued, counts.cancelled, counts.all, counts.not_yet_recorded) == (4, 1, 5, 3)


def test_cost_converted_per_type_with_the_rate_effective_at_the_time() -> None:
    summary = cost_summary(
        [
            IssuedCostRow("coupon", "USD", 2, Decimal("20")),
            IssuedCostRow("coupon", "HKD", 1, Decimal("5")),
            IssuedCostRow("cash", "HKD", 3, Decimal("300")),
        ],
        "HKD",
        rates(),
        AT,
    )
    types = {t.prize_type: t for t in summary.by_type}
    assert list(types) == ["coupon", "physical", "cash"]
    assert types["coupon"].amount == Decimal("161") and types["coupon"].records == 3
    assert [(c.currency, c.amount, c.records) for c in types["coupon"].by_currency] == [
        ("HKD", Decimal("5"), 1),
        ("USD", Decimal("20"), 2),
    ]
    assert types["physical"].records == 0 and types["physical"].amount == 0
    assert summary.total == Decimal("461") and summary.complete
    assert cost_per_user(summary, 4) == Decimal("115.25")


def test_inverse_rate_and_half_even_rounding() -> None:
    # CNY → HKD only through the inverse of HKD → CNY 0.9: 1 / 0.9 = 1.111…
    summary = cost_summary([IssuedCostRow("cash", "CNY", 1, Decimal("1"))], "HKD", rates(), AT)
    assert summary.total == Decimal("1.111111")
    assert cost_per_user(summary, 3) == Decimal("0.370370")


def test_missing_rate_and_missing_cost_make_the_summary_incomplete() -> None:
    summary = cost_summary(
        [
            IssuedCostRow("physical", "SGD", 2, Decimal("30")),
            IssuedCostRow("physical", "HKD", 1, Decimal("50")),
            IssuedCostRow("coupon", None, 4, None),
        ],
        "HKD",
        rates(),
        AT,
    )
    types = {t.prize_type: t for t in summary.by_type}
    assert types["physical"].amount == Decimal("50") and not types["physical"].complete
    assert types["coupon"].uncosted_records == 4 and not types["coupon"].complete
    assert types["coupon"].records == 4
    assert types["cash"].complete
    assert [(u.currency, u.amount, u.records) for u in summary.unconverted] == [
        ("SGD", Decimal("30"), 2)
    ]
    assert summary.total == Decimal("50") and summary.uncosted_records == 4
    assert not summary.complete
    # a partial total would understate the cost of a user
    assert cost_per_user(summary, 2) is None


def test_cost_per_user_needs_users_and_a_cost() -> None:
    summary = cost_summary([], "HKD", rates(), AT)
    assert summary.total == 0 and summary.complete
    assert cost_per_user(summary, 0) is None
    assert cost_per_user(None, 5) is None
    assert cost_per_user(summary, 5) == Decimal("0")


def test_rule_tasks_of_a_config() -> None:
    config = {
        "rules": [
            {"id": "reg", "task": "register"},
            {"id": "dep", "task": "first_deposit", "threshold": "1000"},
            {"task": "no-id"},
        ]
    }
    assert rule_tasks(config) == {"reg": "register", "dep": "first_deposit"}
    assert rule_tasks({}) == {} and rule_tasks({"rules": None}) == {}
