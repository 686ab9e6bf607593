"""Forgetting Idempotency-Keys past their retention: a periodic job of every service's
worker deletes them in batches, oldest first, each batch its own short transaction."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from arq.cron import CronJob, cron

from service_kit.db import Database
from service_kit.idempotency.models import IdempotencyKeyMixin
from service_kit.idempotency.repository import delete_expired

log = logging.getLogger(__name__)

EXPIRE_JOB = "idempotency.expire"
# Rows per DELETE: a batch holds its row locks for milliseconds, never the whole table.
BATCH_SIZE = 5_000


async def expire_keys(
    db: Database,
    model: type[IdempotencyKeyMixin],
    keep: timedelta,
    *,
    batch_size: int = BATCH_SIZE,
) -> int:
    """Delete every key older than ``keep``; returns how many. Batches go on until one
    deletes fewer rows than its size, so a backlog (a worker down for days) is cleared in
    one run and a run with nothing to do costs one index probe."""
    deleted = 0
    while True:
        async with db.session() as session:
            n = await delete_expired(session, model, keep, batch_size)
        deleted += n
        if n < batch_size:
            break
    if deleted:
        log.info("idempotency: %d expired keys deleted", deleted)
    return deleted


def expire_keys_cron(model: type[IdempotencyKeyMixin]) -> CronJob:
    """The hourly expiry of one service's keys (``ctx["settings"]`` gives the retention).
    arq runs each due time once whatever the number of workers (the cron job id); two
    passes overlapping anyway would only skip each other's locked rows."""

    async def expire_idempotency_keys(ctx: dict[str, Any]) -> int:
        keep = timedelta(hours=ctx["settings"].idempotency_key_retention_hours)
        return await expire_keys(ctx["db"], model, keep)

    return cron(
        expire_idempotency_keys,
        name=f"{EXPIRE_JOB}.cron",
        minute={23},
        run_at_startup=False,
        unique=True,
        timeout=600,
    )
