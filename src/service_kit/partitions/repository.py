"""The DDL of partition maintenance (table names come from code, never from requests)."""

from __future__ import annotations

from datetime import date

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from service_kit.partitions.rules import PartitionedTable, bounds, month_of, partition_name


def _ident(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise ValueError(f"not a plain identifier: {name!r}")
    return f'"{name}"'


class PartitionRepository:
    def __init__(self, session: AsyncSession, table: PartitionedTable) -> None:
        self.session = session
        self.table = table

    async def lock(self) -> None:
        """One maintenance pass per table at a time, whichever worker runs it."""
        await self.session.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
            {"key": f"partitions:{self.table.name}"},
        )

    async def months(self) -> set[date]:
        rows = await self.session.execute(
            text(
                "SELECT c.relname FROM pg_inherits i "
                "JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = CAST(:parent AS regclass)"
            ),
            {"parent": self.table.name},
        )
        found = {month_of(self.table.name, name) for (name,) in rows}
        return {m for m in found if m is not None}

    async def create(self, month: date) -> int:
        """Creates the month's partition and moves into it the rows the default partition
        took for that month meanwhile; returns how many were moved. The table is filled
        before it is attached, so the attach only checks (and the default stays small)."""
        parent = _ident(self.table.name)
        child = _ident(partition_name(self.table.name, month))
        default = _ident(f"{self.table.name}_default")
        column = _ident(self.table.column)
        start, end = bounds(month)
        in_range = f"{column} >= :start AND {column} < :end"
        params = {"start": start, "end": end}
        await self.session.execute(
            text(f"CREATE TABLE {child} (LIKE {parent} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
        )
        moved = 0
        if await self._exists(f"{self.table.name}_default"):
            result = await self.session.execute(
                text(
                    f"WITH gone AS (DELETE FROM {default} WHERE {in_range} RETURNING *) "
                    f"INSERT INTO {child} SELECT * FROM gone"
                ),
                params,
            )
            moved = int(result.rowcount or 0)  # type: ignore[attr-defined]
        # Literal bounds: DDL takes no parameters (the values are our own datetimes).
        await self.session.execute(
            text(
                f"ALTER TABLE {parent} ATTACH PARTITION {child} "
                f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
            )
        )
        return moved

    async def drop(self, month: date) -> None:
        await self.session.execute(
            text(f"DROP TABLE IF EXISTS {_ident(partition_name(self.table.name, month))}")
        )

    async def _exists(self, name: str) -> bool:
        found = await self.session.scalar(
            text("SELECT to_regclass(:name) IS NOT NULL"), {"name": name}
        )
        return bool(found)
