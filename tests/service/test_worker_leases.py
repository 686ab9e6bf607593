"""A job's in-progress key is a short lease its worker renews: another worker never starts
a job that is running, and starts a dead worker's job within the lease, however long
the worker's cron jobs may run."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from arq.constants import in_progress_key_prefix
from arq.worker import Worker

from referral_service.db import IdempotencyKey, OutboxMessage
from service_kit.idempotency.expiry import expire_keys_cron
from service_kit.queue import arq_job_id, enqueue
from service_kit.worker import IN_PROGRESS_LEASE_SECONDS, JOB_TIMEOUT_SECONDS, build_worker, job
from tests.service.harness import Platform

JOB = "test.hold"


def _prefix(platform: Platform) -> str:
    """A queue of the test's own, under the platform's prefix (the next test's clean-up takes
    its keys too)."""
    return f"{platform.settings['referral'].queue_prefix}:lease-{uuid.uuid4().hex[:8]}"


def _worker(
    platform: Platform,
    prefix: str,
    runs: list[float],
    hold: float,
    started: asyncio.Event | None = None,
) -> Worker:
    @job(JOB, "referral")
    async def hold_for_a_while(ctx: dict[str, Any], payload: dict[str, Any]) -> None:
        runs.append(time.monotonic())
        if started is not None:
            started.set()
        await asyncio.sleep(hold)

    settings = platform.settings["referral"].model_copy(update={"queue_prefix": prefix})
    return build_worker(
        service="referral",
        settings=settings,
        functions=[hold_for_a_while],
        outbox_model=OutboxMessage,
        # Allowed 600 s: arq alone would give every job's in-progress key 610 s.
        cron_jobs=[expire_keys_cron(IdempotencyKey)],
        burst=True,
        run_relay=False,
    )


async def test_the_lease_is_short_whatever_the_longest_cron_job(platform: Platform) -> None:
    prefix = _prefix(platform)
    runs: list[float] = []
    started = asyncio.Event()
    worker = _worker(platform, prefix, runs, hold=1.0, started=started)
    assert IN_PROGRESS_LEASE_SECONDS == JOB_TIMEOUT_SECONDS + 10
    assert worker.in_progress_timeout_s == IN_PROGRESS_LEASE_SECONDS
    redis = platform.apps["referral"].state.arq
    await enqueue(redis, prefix, "referral", JOB, {"n": 1}, "held")
    running = asyncio.create_task(worker.async_run())
    try:
        key = in_progress_key_prefix + arq_job_id(prefix, "held")
        await asyncio.wait_for(started.wait(), 30)
        ttl = await redis.pttl(key)
        assert 0 < ttl <= IN_PROGRESS_LEASE_SECONDS * 1000
        await running
    finally:
        await worker.close()
    assert len(runs) == 1


async def test_a_running_job_keeps_its_lease_and_a_dead_workers_job_is_run_again(
    platform: Platform,
) -> None:
    prefix = _prefix(platform)
    redis = platform.apps["referral"].state.arq
    lease = 0.6

    # Two workers on one queue, a job running three leases long: the one running it
    # renews its lease, so the other never starts it too.
    runs: list[float] = []
    workers = [_worker(platform, prefix, runs, hold=3 * lease) for _ in range(2)]
    for worker in workers:
        worker.in_progress_timeout_s = lease
    await enqueue(redis, prefix, "referral", JOB, {"n": 1}, "long")
    try:
        await asyncio.gather(*(w.async_run() for w in workers))
    finally:
        for worker in workers:
            await worker.close()
    assert len(runs) == 1, runs

    # A worker that died running a job left its in-progress key and the job in the queue:
    # another starts it once the lease is over, not before.
    runs.clear()
    await enqueue(redis, prefix, "referral", JOB, {"n": 2}, "orphan")
    job_key = in_progress_key_prefix + arq_job_id(prefix, "orphan")
    await redis.psetex(job_key, int(lease * 1000), b"1")
    left = time.monotonic()
    survivor = _worker(platform, prefix, runs, hold=0.0)
    survivor.in_progress_timeout_s = lease
    try:
        await asyncio.wait_for(survivor.async_run(), 10 * lease + 5)
    finally:
        await survivor.close()
    assert len(runs) == 1
    assert lease - 0.05 <= runs[0] - left <= lease + 3.0, runs[0] - left
