"""Which monthly partitions a table should have: pure date arithmetic, no database."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime


@dataclass(frozen=True)
class PartitionedTable:
    """A table partitioned by month on ``column``; ``ahead``: months created in advance;
    ``retention_months``: months kept before the current one (0: all kept)."""

    name: str
    column: str
    ahead: int = 3
    retention_months: int = 0


def month_start(at: datetime | date) -> date:
    return date(at.year, at.month, 1)


def add_months(month: date, count: int) -> date:
    index = month.year * 12 + (month.month - 1) + count
    return date(index // 12, index % 12 + 1, 1)


def partition_name(table: str, month: date) -> str:
    return f"{table}_p{month.year:04d}{month.month:02d}"


def bounds(month: date) -> tuple[datetime, datetime]:
    """[start, end) of a month in UTC, the range of its partition."""
    start = datetime(month.year, month.month, 1, tzinfo=UTC)
    end_month = add_months(month, 1)
    return start, datetime(end_month.year, end_month.month, 1, tzinfo=UTC)


def month_of(table: str, partition: str) -> date | None:
    """The month a partition of ``table`` holds, from its name; None for any other table
    (the default partition, or one somebody attached by hand)."""
    match = re.fullmatch(re.escape(table) + r"_p(\d{4})(\d{2})", partition)
    if match is None or not 1 <= int(match.group(2)) <= 12:
        return None
    return date(int(match.group(1)), int(match.group(2)), 1)


def months_to_create(table: PartitionedTable, existing: set[date], now: datetime) -> list[date]:
    """The months from this one to ``ahead`` months on that have no partition yet."""
    current = month_start(now)
    wanted = [add_months(current, i) for i in range(table.ahead + 1)]
    return [m for m in wanted if m not in existing]


def retention_cutoff(table: PartitionedTable, now: datetime) -> date | None:
    """The first month kept, or None when everything is kept. With a retention of N months
    the current month and the N before it are kept."""
    if table.retention_months <= 0:
        return None
    return add_months(month_start(now), -table.retention_months)


def partitions_to_drop(table: PartitionedTable, existing: set[date], now: datetime) -> list[date]:
    """Whole months older than the retention, oldest first."""
    cutoff = retention_cutoff(table, now)
    if cutoff is None:
        return []
    return sorted(m for m in existing if m < cutoff)
