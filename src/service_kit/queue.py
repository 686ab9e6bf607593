"""arq queues: one per service, named under the platform's key prefix."""

from __future__ import annotations

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
