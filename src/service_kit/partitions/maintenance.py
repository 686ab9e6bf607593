"""One maintenance pass of a partitioned table: months ahead created, old months dropped."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from service_kit.partitions.repository import PartitionRepository
from service_kit.partitions.rules import PartitionedTable, months_to_create, partitions_to_drop

log = logging.getLogger(__name__)


@dataclass
class PartitionPass:
    created: list[date] = field(default_factory=list)
    dropped: list[date] = field(default_factory=list)
    moved_from_default: int = 0


async def maintain(session: AsyncSession, table: PartitionedTable, now: datetime) -> PartitionPass:
    """Runs in the caller's transaction (the job commits): every change of the pass, or none."""
    repo = PartitionRepository(session, table)
    await repo.lock()
    existing = await repo.months()
    done = PartitionPass()
    for month in months_to_create(table, existing, now):
        done.moved_from_default += await repo.create(month)
        done.created.append(month)
    for month in partitions_to_drop(table, existing, now):
        await repo.drop(month)
        done.dropped.append(month)
    if done.moved_from_default:
        # Rows in the default partition mean the pass fell behind: worth a look.
        log.warning(
            "%s: %d rows moved from the default partition", table.name, done.moved_from_default
        )
    return done
