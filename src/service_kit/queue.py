"""arq queues: one per service, named under the platform's key prefix."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.constants import expires_extra_ms, job_key_prefix, result_key_prefix
from arq.jobs import serialize_job
from arq.utils import timestamp_ms
from redis.asyncio import Redis
from redis.asyncio.sentinel import Sentinel

from service_kit.correlation import stamp

SERVICES = ("activity", "referral", "reward")


def queue_name(prefix: str, service: str) -> str:
    return f"{prefix}:queue:{service}"


def arq_job_id(prefix: str, job_id: str) -> str:
    """The job id as arq stores it: prefixed, so stacks sharing a server never collide."""
    return f"{prefix}:{job_id}"


SENTINEL_SCHEME = "redis+sentinel"


@dataclass(frozen=True)
class SentinelAddress:
    """``redis+sentinel://[[user]:password@]host:port[,host:port...]/master[/db]``: a Redis
    found through a Sentinel group (the password is the master's; the sentinels are asked
    without one)."""

    hosts: list[tuple[str, int]]
    master: str
    database: int = 0
    username: str | None = None
    password: str | None = None


def parse_sentinel_url(url: str) -> SentinelAddress | None:
    """The Sentinel group a ``redis+sentinel://`` URL names; None for any other URL."""
    parts = urlsplit(url)
    if parts.scheme != SENTINEL_SCHEME:
        return None
    credentials, _, hostlist = parts.netloc.rpartition("@")
    username, _, password = credentials.partition(":")
    hosts = []
    for item in hostlist.split(","):
        host, _, port = item.strip().rpartition(":")
        if not host:
            host, port = port, "26379"
        hosts.append((host, int(port or 26379)))
    path = [p for p in parts.path.split("/") if p]
    if not path or not hosts:
        raise ValueError("a Sentinel URL names its hosts and the master: …//host:port/master")
    return SentinelAddress(
        hosts=hosts,
        master=unquote(path[0]),
        database=int(path[1]) if len(path) > 1 else 0,
        username=unquote(username) or None,
        password=unquote(password) or None,
    )


def redis_client(url: str, **options: Any) -> Redis:
    """A Redis client for a plain (``redis://``, ``rediss://``) or a Sentinel URL; the
    Sentinel one follows the master through fail-overs."""
    sentinel = parse_sentinel_url(url)
    if sentinel is None:
        return Redis.from_url(url, **options)
    group = Sentinel(
        sentinel.hosts,
        socket_timeout=options.get("socket_timeout"),
        socket_connect_timeout=options.get("socket_connect_timeout"),
    )
    return group.master_for(
        sentinel.master,
        db=sentinel.database,
        username=sentinel.username,
        password=sentinel.password,
        **options,
    )


def redis_settings(url: str) -> RedisSettings:
    sentinel = parse_sentinel_url(url)
    if sentinel is None:
        settings = RedisSettings.from_dsn(url)
    else:
        settings = RedisSettings(
            host=sentinel.hosts,
            sentinel=True,
            sentinel_master=sentinel.master,
            database=sentinel.database,
            username=sentinel.username,
            password=sentinel.password,
        )
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
        stamp(payload),
        _job_id=arq_job_id(prefix, job_id),
        _queue_name=queue_name(prefix, service),
    )


@dataclass
class Delivery:
    """One arq job carrying the payloads of one or more outbox messages of one job name."""

    queue: str
    job_name: str
    job_id: str
    payloads: list[dict[str, Any]]
    message_ids: list[uuid.UUID] = field(default_factory=list)


async def enqueue_many(redis: ArqRedis, prefix: str, deliveries: list[Delivery]) -> int:
    """Enqueue many jobs in two round trips (arq's ``enqueue_job`` takes three per job).

    Like arq, a job whose id is queued or has a result is not enqueued again. The check and
    the write are not one atomic step: two relays racing on one id may both write it, which
    arq stores as one job (same key, same queue member) — and consumers are idempotent."""
    if not deliveries:
        return 0
    check = redis.pipeline(transaction=False)
    for delivery in deliveries:
        job_id = arq_job_id(prefix, delivery.job_id)
        check.exists(job_key_prefix + job_id, result_key_prefix + job_id)
    known = await check.execute()
    now_ms = timestamp_ms()
    write = redis.pipeline(transaction=True)
    written = 0
    for delivery, exists in zip(deliveries, known, strict=True):
        if exists:
            continue
        job_id = arq_job_id(prefix, delivery.job_id)
        body = serialize_job(
            delivery.job_name,
            (delivery.payloads,),
            {},
            None,
            now_ms,
            serializer=redis.job_serializer,
        )
        write.psetex(job_key_prefix + job_id, expires_extra_ms, body)
        write.zadd(queue_name(prefix, delivery.queue), {job_id: now_ms})
        written += 1
    if written:
        await write.execute()
    return written
