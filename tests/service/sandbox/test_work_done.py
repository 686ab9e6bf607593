"""The work-done channel: where sandboxes are allowed, every worker says "a job ended" once
arq removed the job from its queue, and an advance waiting for a tenant's queued work looks
again then instead of polling; a deployment without sandboxes says nothing."""

from __future__ import annotations

import uuid
from typing import Any

from arq.worker import Worker

from referral_service.db import OutboxMessage
from service_kit.outbox import OutboxRepository
from service_kit.outbox.relay import relay_pass
from service_kit.queue import arq_job_id, enqueue, queue_name
from service_kit.sandbox import WorkDoneWaiter, announce_work_done, work_owed
from service_kit.worker import build_worker, job
from tests.service.harness import Platform

JOB = "test.noted"


def _prefix(platform: Platform) -> str:
    """Under the platform's prefix: the next test's clean-up takes its keys too."""
    return f"{platform.settings['referral'].queue_prefix}:done-{uuid.uuid4().hex[:8]}"


def _worker(platform: Platform, prefix: str, sandbox_enabled: bool, seen: list[bool]) -> Worker:
    @job(JOB, "referral")
    async def noted(ctx: dict[str, Any], payload: dict[str, Any]) -> None:
        # still queued while it runs: a look now counts it
        seen.append(await ctx["redis"].zscore(queue_name(prefix, "referral"), ctx["job_id"]))

    settings = platform.settings["referral"].model_copy(
        update={"queue_prefix": prefix, "sandbox_enabled": sandbox_enabled}
    )
    return build_worker(
        service="referral",
        settings=settings,
        functions=[noted],
        outbox_model=OutboxMessage,
        burst=True,
        run_relay=False,
    )


async def test_a_job_ending_wakes_a_waiting_advance_after_it_left_its_queue(
    platform: Platform,
) -> None:
    prefix = _prefix(platform)
    redis = platform.apps["referral"].state.arq
    seen: list[bool] = []
    worker = _worker(platform, prefix, sandbox_enabled=True, seen=seen)
    async with WorkDoneWaiter(redis, prefix, fallback=5) as waiter:
        assert waiter.pubsub is not None
        await enqueue(redis, prefix, "referral", JOB, {"n": 1}, "one")
        await enqueue(redis, prefix, "referral", JOB, {"n": 2}, "two")
        try:
            await worker.async_run()
        finally:
            await worker.close()
        assert len(seen) == 2 and all(score is not None for score in seen)
        # Both ends heard at once: one look answers them all, and the jobs are gone by then.
        assert await waiter.wait() is True
        queue = queue_name(prefix, "referral")
        assert await redis.zscore(queue, arq_job_id(prefix, "one")) is None
        assert await redis.zscore(queue, arq_job_id(prefix, "two")) is None
        # Nothing more ended: the wait gives up after its fallback interval, to look anyway.
        waiter.fallback = 0.2
        assert await waiter.wait() is False


async def test_a_deployment_without_sandboxes_announces_nothing(platform: Platform) -> None:
    prefix = _prefix(platform)
    redis = platform.apps["referral"].state.arq
    worker = _worker(platform, prefix, sandbox_enabled=False, seen=[])
    assert worker.after_job_end is None
    async with WorkDoneWaiter(redis, prefix, fallback=0.3) as waiter:
        await enqueue(redis, prefix, "referral", JOB, {"n": 1}, "one")
        try:
            await worker.async_run()
        finally:
            await worker.close()
        assert worker.jobs_complete == 1
        assert await waiter.wait() is False


async def test_another_deployments_announcements_do_not_wake_a_waiter(
    platform: Platform,
) -> None:
    redis = platform.apps["referral"].state.arq
    prefix = _prefix(platform)
    async with WorkDoneWaiter(redis, prefix, fallback=0.3) as waiter:
        await announce_work_done(redis, _prefix(platform))
        assert await waiter.wait() is False
        await announce_work_done(redis, prefix)
        assert await waiter.wait() is True


async def test_announcements_within_the_spacing_are_answered_by_one_look(
    platform: Platform,
) -> None:
    redis = platform.apps["referral"].state.arq
    prefix = _prefix(platform)
    async with WorkDoneWaiter(redis, prefix, fallback=0.3, spacing=0.5) as waiter:
        await announce_work_done(redis, prefix)
        assert await waiter.wait() is True
        # A burst of job ends right after a look: the next wait takes them all at once…
        for _ in range(5):
            await announce_work_done(redis, prefix)
        assert await waiter.wait() is True
        # …and none is left to wake another look.
        assert await waiter.wait() is False


async def test_without_redis_the_waiter_falls_back_to_looking_every_interval(
    platform: Platform,
) -> None:
    class Unreachable:
        def pubsub(self) -> Any:
            raise ConnectionError("redis away")

        async def publish(self, channel: str, message: bytes) -> int:
            raise ConnectionError("redis away")

    async with WorkDoneWaiter(Unreachable(), _prefix(platform), fallback=0.1) as waiter:  # type: ignore[arg-type]
        assert waiter.pubsub is None
        assert await waiter.wait() is False
    # A lost announcement is not the job's failure.
    await announce_work_done(Unreachable(), "any")  # type: ignore[arg-type]


async def test_work_owed_counts_a_tenants_unsent_messages_and_its_queued_deliveries(
    platform: Platform,
) -> None:
    db = platform.db("referral")
    redis = platform.apps["referral"].state.arq
    prefix = platform.settings["referral"].queue_prefix

    async def owed(tenant: str) -> int:
        return await work_owed(db, OutboxMessage, redis, prefix, tenant)

    async with db.session() as session:
        repo = OutboxRepository.from_session(session, OutboxMessage)
        for n in range(3):
            repo.add("reward", "test.owed", {"tenant_id": "t-mine", "n": n})
        repo.add("activity", "test.owed", {"tenant_id": "t-other"})
    assert await owed("t-mine") == 3  # unsent, one each
    assert await owed("t-other") == 1
    assert await owed("t-nobody") == 0
    # Sent: owed while the delivery carrying them waits in its queue (one delivery).
    assert (await relay_pass(db, OutboxMessage, redis, prefix)).sent == 4
    assert await owed("t-mine") == 1
    assert await owed("t-other") == 1
    # The job ended (arq took it off its queue): nothing owed, although the sweep has not
    # confirmed the delivery yet.
    (member,) = await redis.zrange(queue_name(prefix, "reward"), 0, -1)
    await redis.zrem(queue_name(prefix, "reward"), member)
    assert await owed("t-mine") == 0
    assert await owed("t-other") == 1
