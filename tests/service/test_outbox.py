"""The outbox relay: Redis down means delay, never loss; a message is enqueued under its
job id, so a resend while the job is known to arq adds nothing."""

from __future__ import annotations

import pytest
from arq.connections import ArqRedis

from activity_platform.embedded import free_port
from activity_service.db import OutboxMessage
from service_kit.outbox import OutboxRepository, relay_once
from service_kit.queue import queue_name
from tests.service.harness import Platform


async def _write_messages(platform: Platform, n: int) -> None:
    async with platform.db("activity").session() as session:
        outbox = OutboxRepository.from_session(session, OutboxMessage)
        for i in range(n):
            outbox.add(
                "activity",
                "activity.evaluate_event",
                {"tenant_id": "tenant-a", "event_id": f"e{i}"},
                job_id=f"job-{i}",
            )


async def _unsent(platform: Platform) -> int:
    async with platform.db("activity").session() as session:
        return await OutboxRepository.from_session(session, OutboxMessage).count_unsent()


async def test_redis_down_keeps_messages_until_it_is_back(platform: Platform) -> None:
    await _write_messages(platform, 3)
    prefix = platform.settings["activity"].queue_prefix
    # Connects lazily, so the failure happens inside the relay, as when Redis dies.
    dead = ArqRedis.from_url(f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(Exception):  # noqa: B017 - any connection error will do
        await relay_once(platform.db("activity"), OutboxMessage, dead, prefix)
    await dead.aclose()
    assert await _unsent(platform) == 3

    live = platform.apps["activity"].state.arq
    assert await relay_once(platform.db("activity"), OutboxMessage, live, prefix) == 3
    assert await _unsent(platform) == 0
    assert await live.zcard(queue_name(prefix, "activity")) == 3


async def test_job_id_deduplicates_a_resend(platform: Platform) -> None:
    live = platform.apps["activity"].state.arq
    prefix = platform.settings["activity"].queue_prefix
    await _write_messages(platform, 2)
    await relay_once(platform.db("activity"), OutboxMessage, live, prefix)
    await _write_messages(platform, 2)  # same job ids again, e.g. a crash before mark-sent
    await relay_once(platform.db("activity"), OutboxMessage, live, prefix)
    assert await live.zcard(queue_name(prefix, "activity")) == 2
