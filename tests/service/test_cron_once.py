"""A cron job's due time runs once whatever the number of workers: a worker whose loop
lagged behind enqueues the due times it missed after another worker has run them, and
those must be refused."""

from __future__ import annotations

import uuid
from typing import Any

from arq.cron import cron

from referral_service.db import OutboxMessage
from service_kit.queue import queue_name
from service_kit.worker import CRON_RESULT_SECONDS, build_worker
from tests.service.harness import Platform


async def test_a_due_time_that_ran_is_refused_to_a_late_scheduler(platform: Platform) -> None:
    # Under the platform's prefix: the next test's clean-up takes its keys too.
    prefix = f"{platform.settings['referral'].queue_prefix}:cron-{uuid.uuid4().hex[:8]}"
    runs: list[str] = []

    async def tick(ctx: dict[str, Any]) -> None:
        runs.append(ctx["job_id"])

    settings = platform.settings["referral"].model_copy(update={"queue_prefix": prefix})
    worker = build_worker(
        service="referral",
        settings=settings,
        functions=[],
        outbox_model=OutboxMessage,
        # Daily: the test enqueues a due time itself, as a scheduler would.
        cron_jobs=[cron(tick, name="test.tick", hour={3}, minute={0}, unique=True)],
        burst=True,
        run_relay=False,
    )
    (scheduled,) = worker.cron_jobs
    assert scheduled.keep_result_s == CRON_RESULT_SECONDS
    redis = platform.apps["referral"].state.arq
    due_time = f"{scheduled.name}:1796169600000"  # what arq names a due time

    async def schedule() -> bool:
        """What each worker's scheduler does with a due time (``Worker.run_cron``)."""
        queued = await redis.enqueue_job(
            scheduled.name, _job_id=due_time, _queue_name=queue_name(prefix, "referral")
        )
        return queued is not None

    try:
        assert await schedule()
        assert not await schedule()  # a second worker, in time: one job
        await worker.async_run()
        assert runs == [due_time]
        # A third worker, late: the due time ran, its id is refused.
        assert not await schedule()
        await worker.async_run()
    finally:
        await worker.close()
    assert runs == [due_time]
