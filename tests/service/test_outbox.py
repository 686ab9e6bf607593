"""The outbox relay and its sweep: Redis down means delay, never loss; a message stays owed
until its job has finished, so messages whose jobs Redis lost are sent again; a message
whose job fails for good is sent again until it becomes a dead letter."""

from __future__ import annotations

import asyncio

import pytest
from arq.connections import ArqRedis
from arq.constants import job_key_prefix
from arq.jobs import deserialize_job
from sqlalchemy import func, select, update

from activity_platform.embedded import free_port
from activity_service.db import OutboxMessage
from contracts import jobs
from reward_service.db import OutboxMessage as RewardOutboxMessage
from reward_service.models import RewardRecord
from service_kit.outbox import (
    MAX_ATTEMPTS,
    OutboxRepository,
    confirm_deliveries,
    relay_once,
)
from service_kit.queue import queue_name
from tests.service.harness import Platform


async def _write_messages(platform: Platform, n: int, job_name: str = "x.unknown") -> None:
    async with platform.db("activity").session() as session:
        outbox = OutboxRepository.from_session(session, OutboxMessage)
        for i in range(n):
            outbox.add(
                "activity",
                job_name,
                {"tenant_id": "tenant-a", "event_id": f"e{i}"},
                job_id=f"job-{i}",
            )


async def _backlog(platform: Platform, model: type = OutboxMessage) -> dict[str, int]:
    db = platform.db("reward" if model is RewardOutboxMessage else "activity")
    async with db.session() as session:
        return await OutboxRepository.from_session(session, model).backlog()


def _live(platform: Platform) -> ArqRedis:
    return platform.apps["activity"].state.arq  # type: ignore[no-any-return]


async def _queued_payloads(platform: Platform, service: str = "activity") -> list[list[dict]]:
    redis, prefix = _live(platform), platform.settings["activity"].queue_prefix
    job_ids = await redis.zrange(queue_name(prefix, service), 0, -1)
    deliveries = []
    for job_id in job_ids:
        raw = await redis.get(job_key_prefix + job_id.decode())
        deliveries.append(deserialize_job(raw).args[0])
    return deliveries


async def _sweep(platform: Platform, service: str = "activity", model: type = OutboxMessage):
    prefix = platform.settings[service].queue_prefix
    return await confirm_deliveries(
        platform.db(service), model, _live(platform), prefix, grace_seconds=0
    )


async def test_redis_down_keeps_messages_until_it_is_back(platform: Platform) -> None:
    await _write_messages(platform, 3)
    prefix = platform.settings["activity"].queue_prefix
    # Connects lazily, so the failure happens inside the relay, as when Redis dies.
    dead = ArqRedis.from_url(f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(Exception):  # noqa: B017 - any connection error will do
        await relay_once(platform.db("activity"), OutboxMessage, dead, prefix)
    await dead.aclose()
    assert (await _backlog(platform))["unsent"] == 3

    assert await relay_once(platform.db("activity"), OutboxMessage, _live(platform), prefix) == 3
    assert await _backlog(platform) == {"unsent": 0, "in_flight": 3, "dead": 0}
    # One job carries the three messages, in the order they were written.
    assert await _queued_payloads(platform) == [
        [{"tenant_id": "tenant-a", "event_id": f"e{i}"} for i in range(3)]
    ]


async def test_deliveries_hold_at_most_max_per_job_messages(platform: Platform) -> None:
    await _write_messages(platform, 7)
    prefix = platform.settings["activity"].queue_prefix
    await relay_once(platform.db("activity"), OutboxMessage, _live(platform), prefix, 1000, 3)
    sizes = sorted(len(d) for d in await _queued_payloads(platform))
    assert sizes == [1, 3, 3]


async def test_job_id_deduplicates_a_resend_of_a_lone_message(platform: Platform) -> None:
    live, prefix = _live(platform), platform.settings["activity"].queue_prefix
    await _write_messages(platform, 1)
    await relay_once(platform.db("activity"), OutboxMessage, live, prefix)
    await _write_messages(platform, 1)  # same job id again, e.g. a crash before mark-sent
    await relay_once(platform.db("activity"), OutboxMessage, live, prefix)
    assert await live.zcard(queue_name(prefix, "activity")) == 1


async def test_messages_whose_jobs_redis_lost_are_sent_again(platform: Platform) -> None:
    live, prefix = _live(platform), platform.settings["activity"].queue_prefix
    await _write_messages(platform, 5, jobs.ACTIVITY_EVALUATE_EVENT)
    await relay_once(platform.db("activity"), OutboxMessage, live, prefix)
    # Queued, not yet run: the sweep waits.
    report = await _sweep(platform)
    assert (report.waiting, report.resent) == (5, 0)

    await platform.lose_redis_data()
    report = await _sweep(platform)
    assert report.resent == 5
    assert (await _backlog(platform))["unsent"] == 5

    await relay_once(platform.db("activity"), OutboxMessage, live, prefix)
    # (a cron job of the burst worker may run too)
    assert await platform.run_queued_jobs() >= 1
    report = await _sweep(platform)
    assert report.delivered == 5
    assert await _backlog(platform) == {"unsent": 0, "in_flight": 0, "dead": 0}


async def test_a_failing_message_is_sent_again_until_it_is_a_dead_letter(
    platform: Platform,
) -> None:
    """One good and one bad grant in a delivery: the good record is created at once, the
    bad message is re-sent (its job failed) and finally kept as a dead letter."""
    from tests.service.reward.helpers import coupon_prize, grant

    prize = await coupon_prize(platform)
    good = grant(prize["id"], key="gk-good").model_dump(mode="json")
    bad = {**grant(prize["id"], key="gk-bad").model_dump(mode="json"), "prize_id": "not-a-prize"}
    async with platform.db("activity").session() as session:
        outbox = OutboxRepository.from_session(session, OutboxMessage)
        for payload in (good, bad):
            outbox.add("reward", jobs.REWARD_CREATE_FROM_GRANT, payload, payload["grant_key"])
    prefix = platform.settings["activity"].queue_prefix
    await relay_once(platform.db("activity"), OutboxMessage, _live(platform), prefix)
    await platform.run_queued_jobs()

    async with platform.db("reward").session() as session:
        keys = (await session.scalars(select(RewardRecord.grant_key))).all()
    assert keys == ["gk-good"]
    report = await _sweep(platform)
    assert report.resent == 2  # both messages of the failed delivery
    async with platform.db("activity").session() as session:
        errors = (await session.scalars(select(OutboxMessage.last_error))).all()
    assert all(e and "not-a-prize" in e for e in errors)

    async with platform.db("activity").session() as session:
        await session.execute(update(OutboxMessage).values(attempts=MAX_ATTEMPTS - 1))
    await relay_once(platform.db("activity"), OutboxMessage, _live(platform), prefix)
    await platform.run_queued_jobs()
    report = await _sweep(platform)
    assert report.dead == 2
    assert await _backlog(platform) == {"unsent": 0, "in_flight": 0, "dead": 2}
    async with platform.db("reward").session() as session:
        keys = (await session.scalars(select(RewardRecord.grant_key))).all()
    assert keys == ["gk-good"]  # the re-run of the good message changed nothing


async def test_a_queue_whose_consumer_is_behind_gets_its_messages_later_in_bigger_jobs(
    platform: Platform,
) -> None:
    from service_kit.outbox import relay_pass

    live, prefix = _live(platform), platform.settings["activity"].queue_prefix
    await _write_messages(platform, 3)
    done = await relay_pass(
        platform.db("activity"), OutboxMessage, live, prefix, max_per_job=1, max_queued_jobs=2
    )
    assert done.sent == 3 and done.held_back == []
    # Three jobs now wait in the activity queue: more messages for it stay in the outbox.
    await _write_messages(platform, 4)
    done = await relay_pass(platform.db("activity"), OutboxMessage, live, prefix, max_queued_jobs=2)
    assert done.sent == 0 and done.held_back == ["activity"]
    assert (await _backlog(platform))["unsent"] == 4
    # The consumer caught up: the four leave together, in one job.
    await live.delete(queue_name(prefix, "activity"))
    done = await relay_pass(platform.db("activity"), OutboxMessage, live, prefix, max_queued_jobs=2)
    assert done.sent == 4
    assert [len(d) for d in await _queued_payloads(platform)] == [4]


async def test_two_sweeps_settling_the_same_deliveries_skip_each_others_rows(
    platform: Platform,
) -> None:
    """Two workers' sweeps each settle several deliveries in one transaction: a delivery
    the other is settling is skipped instead of waited for (waiting, in opposite orders,
    deadlocked)."""
    await _write_messages(platform, 2)
    async with platform.db("activity").session() as session:
        rows = await OutboxRepository.from_session(session, OutboxMessage).claim_unsent(10)
        deliveries = {row.job_id: f"d-{row.job_id}" for row in rows}
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.job_id.in_(list(deliveries)))
            .values(sent_at=func.now(), attempts=1)
        )
        for job_id, delivery_id in deliveries.items():
            await session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.job_id == job_id)
                .values(delivery_id=delivery_id)
            )
    first, second = sorted(deliveries.values())
    db = platform.db("activity")
    async with db.session() as one, db.session() as two:
        sweep_one = OutboxRepository.from_session(one, OutboxMessage)
        sweep_two = OutboxRepository.from_session(two, OutboxMessage)
        assert await sweep_one.confirm([first]) == 1
        assert await sweep_two.send_again([second]) == 1
        # Each now meets the other's delivery: skipped at once, no wait, no deadlock.
        assert await asyncio.wait_for(sweep_one.send_again([second]), 5) == 0
        assert await asyncio.wait_for(sweep_two.confirm([first]), 5) == 0
    assert await _backlog(platform) == {"unsent": 1, "in_flight": 0, "dead": 0}
