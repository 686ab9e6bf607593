"""arq queues: one per service, named under the platform's key prefix."""

from __future__ import annotations

from typing import Any

from arq.connections import ArqRedis, RedisSettings, create_pool

SERVICES = ("activity", "referral", "reward")


def queue_name(prefix: str, service: str) -> str:
    return f"{prefix}:queue:{service}"


def redis_settings(url: str) -> RedisSettings:
    settings = RedisSettings.from_dsn(url)
    # Fail fast and let the caller (relay loop, readiness probe) decide when to retry.
    settings.conn_retries = 1
    settings.conn_timeout = 2
    return settings


async def create_arq_pool(url: str) -> ArqRedis:
    return await create_pool(redis_settings(url))


async def enqueue(
    redis: ArqRedis,
    prefix: str,
    service: str,
    job_name: str,
    payload: dict[str, Any],
    job_id: str,
) -> None:
    """Put a job on a service's queue. The one place that spells queue names and job ids in
    Redis: both carry the prefix, so stacks sharing a server never collide."""
    await redis.enqueue_job(
        job_name,
        payload,
        _job_id=f"{prefix}:{job_id}",
        _queue_name=queue_name(prefix, service),
    )
