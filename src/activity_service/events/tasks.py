"""Events jobs: the hourly upkeep of the events history (partitions ahead, retention)."""

from __future__ import annotations

from typing import Any

from arq.cron import CronJob, cron

from activity_service.events.history import keep_history

EVENTS_HISTORY = "events.history"


async def keep_events_history(ctx: dict[str, Any]) -> int:
    done = await keep_history(ctx["db"], ctx["settings"], ctx["clock"].now())
    return done.created + done.dropped


# Hourly: partitions are made months ahead, so a worker down for days still finds them; a
# unique cron job id per due time makes the pass run once whatever the number of workers
# (and an advisory lock keeps two passes of one table apart anyway).
CRON_JOBS: list[CronJob] = [
    cron(
        keep_events_history,
        name=f"{EVENTS_HISTORY}.cron",
        minute={17},
        run_at_startup=False,
        unique=True,
        timeout=600,
    )
]
