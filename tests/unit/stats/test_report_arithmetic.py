"""Pure arithmetic of the campaign report: conversion rates and net inflow."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from activity_service.stats.aggregation import funnel, net_inflow
from activity_service.tenants.fx import RateTable

AT = datetime(2026, 12, 20, tzinfo=UTC)


def test_rates_over_the_previous_and_the_first_stage() -> None:
    stages = funnel(
        [("invited", 3), ("registered", 3), ("account_opened", 2), ("first_deposit", 0)]
    )
    assert [(s.rate_from_previous, s.rate_from_start) for s in stages] == [
        (None, None),
        (Decimal("1.0000"), Decimal("1.0000")),
        (Decimal("0.6667"), Decimal("0.6667")),
        (Decimal("0.0000"), Decimal("0.0000")),
    ]
    empty = funnel([("invited", 0), ("registered", 0)])
    assert [(s.rate_from_previous, s.rate_from_start) for s in empty] == [(None, None)] * 2


def test_net_inflow_converts_what_it_can() -> None:
    rates = RateTable()
    rates.add("USD", "HKD", datetime(2026, 1, 1, tzinfo=UTC), Decimal("7.8"))
    inflow = net_inflow(
        [("HKD", Decimal("-100"), 1), ("SGD", Decimal("5"), 1), ("USD", Decimal("10"), 2)],
        "HKD",
        rates,
        AT,
    )
    assert inflow.total == Decimal("-22.000000") and inflow.complete is False
    assert [c.currency for c in inflow.by_currency] == ["HKD", "SGD", "USD"]
