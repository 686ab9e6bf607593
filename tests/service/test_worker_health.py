"""A worker's heartbeat in Redis, read by ``activity-platform healthcheck``."""

from __future__ import annotations

from activity_platform.healthcheck import worker_healthy
from activity_platform.services import SERVICES
from service_kit.worker import worker_health_key
from tests.service.harness import Platform, worker_run_relay_off


async def test_a_running_worker_is_healthy_and_a_silent_one_is_not(platform: Platform) -> None:
    settings = platform.settings["referral"]
    redis = platform.apps["referral"].state.arq
    await redis.delete(worker_health_key(settings.queue_prefix, "referral"))
    healthy, said = await worker_healthy(settings, "referral")
    assert not healthy and said.endswith(": missing")

    worker = SERVICES["referral"].create_worker(settings=settings, clock=platform.clock, burst=True)
    worker_run_relay_off(worker)
    try:
        await worker.async_run()  # one pass of its main loop writes the heartbeat
        healthy, said = await worker_healthy(settings, "referral")
        assert healthy and said.endswith(": fresh")
        # It expires soon after the worker stops refreshing it (a hung loop, a dead process).
        ttl = await redis.pttl(worker_health_key(settings.queue_prefix, "referral"))
        assert 0 < ttl <= 11_000
    finally:
        await worker.close()
    healthy, _ = await worker_healthy(settings, "referral")
    assert not healthy  # a worker that stopped cleanly takes its heartbeat with it


async def test_an_unreachable_redis_is_unhealthy(platform: Platform) -> None:
    settings = platform.settings["referral"].model_copy(
        update={"redis_url": "redis://127.0.0.1:1/0"}
    )
    healthy, said = await worker_healthy(settings, "referral")
    assert not healthy and said.startswith("Redis: ")
