"""Time-partitioned history tables (PostgreSQL native RANGE partitioning by month).

A history table is partitioned on a time column its rows get from the server when they are
written (so a new row always falls in the current month), one partition per calendar month
in UTC named ``<table>_pYYYYMM``, plus a ``<table>_default`` partition as a safety net: a
row whose month has no partition yet lands there instead of failing, and the next
maintenance pass moves it into the month's partition when it creates it.

``maintain`` (run by a worker's cron job) creates the partitions of the coming months ahead
and, with a retention, drops whole partitions older than it: dropping a month is a catalog
operation, not a DELETE of millions of rows, so the cost of keeping history stays flat.
"""

from service_kit.partitions.maintenance import PartitionPass, maintain
from service_kit.partitions.rules import (
    PartitionedTable,
    month_start,
    months_to_create,
    partition_name,
    partitions_to_drop,
)

__all__ = [
    "PartitionPass",
    "PartitionedTable",
    "maintain",
    "month_start",
    "months_to_create",
    "partition_name",
    "partitions_to_drop",
]
