"""Keeping the events history cheap: monthly partitions of ``events`` created ahead, and,
with a retention, whole months dropped with the event ids they held."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from activity_service.config import ActivitySettings
from activity_service.events.repository import EventKeyRepository
from service_kit.db import Database
from service_kit.partitions import PartitionedTable, maintain
from service_kit.partitions.rules import bounds, retention_cutoff

log = logging.getLogger(__name__)

KEY_PRUNE_BATCH = 10_000


def events_table(settings: ActivitySettings) -> PartitionedTable:
    return PartitionedTable(
        name="events",
        column="received_at",
        ahead=settings.history_partitions_ahead,
        retention_months=settings.history_retention_months,
    )


@dataclass
class HistoryPass:
    created: int = 0
    dropped: int = 0
    keys_forgotten: int = 0


async def keep_history(db: Database, settings: ActivitySettings, now: datetime) -> HistoryPass:
    """Partitions first (one transaction), then the forgotten ids in batches (one
    transaction each, so a long prune never holds locks for long). Between the two, an id of a
    dropped month sent again is answered 409 event_in_flight and stored on retry."""
    table = events_table(settings)
    async with db.session() as session:
        partitions = await maintain(session, table, now)
    done = HistoryPass(created=len(partitions.created), dropped=len(partitions.dropped))
    first_kept = retention_cutoff(table, now)
    if first_kept is not None:
        cutoff = bounds(first_kept)[0]
        while True:
            async with db.session() as session:
                forgotten = await EventKeyRepository(session).delete_received_before(
                    cutoff, KEY_PRUNE_BATCH
                )
            done.keys_forgotten += forgotten
            if forgotten < KEY_PRUNE_BATCH:
                break
    if done.created or done.dropped:
        log.info(
            "events history: %d partitions created, %d dropped, %d ids forgotten",
            done.created,
            done.dropped,
            done.keys_forgotten,
        )
    return done
