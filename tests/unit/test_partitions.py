"""Which monthly partitions a history table should have (pure rules)."""

from __future__ import annotations

from datetime import UTC, date, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service_kit.partitions.rules import (
    PartitionedTable,
    add_months,
    bounds,
    month_of,
    months_to_create,
    partition_name,
    partitions_to_drop,
    retention_cutoff,
)

NOW = datetime(2026, 12, 1, 5, 0, tzinfo=UTC)


def test_names_and_bounds_are_utc_months() -> None:
    assert partition_name("events", date(2027, 1, 1)) == "events_p202701"
    assert month_of("events", "events_p202701") == date(2027, 1, 1)
    assert month_of("events", "events_default") is None
    assert month_of("events", "events_p202713") is None
    assert month_of("events", "event_keys_p202701") is None
    assert bounds(date(2026, 12, 1)) == (
        datetime(2026, 12, 1, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
    )


def test_the_coming_months_are_created_once() -> None:
    table = PartitionedTable("events", "received_at", ahead=3)
    assert months_to_create(table, set(), NOW) == [
        date(2026, 12, 1),
        date(2027, 1, 1),
        date(2027, 2, 1),
        date(2027, 3, 1),
    ]
    have = {date(2026, 12, 1), date(2027, 1, 1)}
    assert months_to_create(table, have, NOW) == [date(2027, 2, 1), date(2027, 3, 1)]


def test_retention_keeps_the_current_month_and_the_ones_before() -> None:
    existing = {add_months(date(2026, 12, 1), -i) for i in range(6)}
    assert partitions_to_drop(PartitionedTable("events", "received_at"), existing, NOW) == []
    table = PartitionedTable("events", "received_at", retention_months=2)
    assert retention_cutoff(table, NOW) == date(2026, 10, 1)
    assert partitions_to_drop(table, existing, NOW) == [
        date(2026, 7, 1),
        date(2026, 8, 1),
        date(2026, 9, 1),
    ]


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])  # shared, busy cores
@given(st.dates(min_value=date(2000, 1, 1), max_value=date(2200, 1, 1)), st.integers(-400, 400))
def test_months_add_up(day: date, count: int) -> None:
    month = date(day.year, day.month, 1)
    moved = add_months(month, count)
    assert moved.day == 1
    assert (moved.year - month.year) * 12 + moved.month - month.month == count
    assert add_months(moved, -count) == month
