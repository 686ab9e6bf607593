"""Per-caller rate limits in Redis: fixed windows that work on every Redis the platform
supports (6.2 and later), and the 429 problem that tells the caller when to come back.

A window starts at a caller's first counted request and is never extended: one MULTI sets
the counter with its TTL only if it is new (``SET NX EX``), increments it and reads the TTL
(``EXPIRE … NX`` would need Redis 7). When Redis cannot be reached the limits fail open
(logged): a throttle must not take the writes it protects down with it.
"""

from __future__ import annotations

import logging
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from service_kit.auth import CallerKind, Principal
from service_kit.config import ServiceSettings
from service_kit.errors import PROBLEM_JSON, ProblemError

log = logging.getLogger(__name__)

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class TooManyRequests(ProblemError):
    """429 with ``retry_after`` (seconds), also sent as the ``Retry-After`` header."""

    status, code, title = 429, "rate_limited", "Too many requests"

    def __init__(self, detail: str, retry_after: int, **extra: Any) -> None:
        super().__init__(detail, retry_after=retry_after, **extra)
        self.retry_after = retry_after


class FixedWindow:
    """Counters of one kind of event per caller, each living for one window."""

    def __init__(self, redis: Redis, prefix: str, name: str, window_seconds: int) -> None:
        self.redis = redis
        self.prefix = f"{prefix}:{name}"
        self.window_seconds = window_seconds

    def key(self, principal: Principal) -> str:
        return f"{self.prefix}:{principal.tenant_id}:{principal.actor}"

    async def add(self, principal: Principal, amount: int = 1) -> tuple[int, int]:
        """Count ``amount`` more; the count in the window and the seconds it has left."""
        key = self.key(principal)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(key, 0, ex=self.window_seconds, nx=True)
            pipe.incrby(key, amount)
            pipe.ttl(key)
            _, count, ttl = await pipe.execute()
        return int(count), max(int(ttl), 1)

    async def current(self, principal: Principal) -> tuple[int, int]:
        """The count in the window (0 outside one) and the seconds it has left."""
        key = self.key(principal)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(key)
            pipe.ttl(key)
            count, ttl = await pipe.execute()
        return int(count or 0), max(int(ttl), 1)


async def limit(
    window: FixedWindow, principal: Principal, allowed: int, what: str, amount: int = 1
) -> None:
    """Count ``amount`` requests of ``principal``; 429 once more than ``allowed`` fall in
    the window (0 = unlimited, nothing counted)."""
    if allowed <= 0:
        return
    try:
        count, retry_after = await window.add(principal, amount)
    except RedisError:
        log.warning("rate limiter unavailable; allowing the request", exc_info=True)
        return
    if count > allowed:
        raise TooManyRequests(
            f"More than {allowed} {what} per {window.window_seconds} seconds from this "
            f"caller; try again in {retry_after} seconds.",
            retry_after=retry_after,
            limit=allowed,
        )


def write_limit(settings: ServiceSettings, kind: CallerKind) -> int:
    return {
        CallerKind.user: settings.write_limit_user,
        CallerKind.operator: settings.write_limit_operator,
        CallerKind.service: settings.write_limit_service,
    }[kind]


class RateLimits:
    """The limits every service applies: writes per caller (by kind) and app logins."""

    def __init__(self, redis: Redis, settings: ServiceSettings) -> None:
        self.settings = settings
        window = settings.rate_limit_window_seconds
        self.writes = FixedWindow(redis, settings.queue_prefix, "ratelimit:writes", window)
        self.logins = FixedWindow(redis, settings.queue_prefix, "ratelimit:logins", window)

    async def write(self, principal: Principal) -> None:
        await limit(self.writes, principal, write_limit(self.settings, principal.kind), "writes")

    async def login(self, principal: Principal, amount: int = 1) -> None:
        await limit(self.logins, principal, self.settings.login_limit, "logins", amount)


RATE_LIMITED_RESPONSE: dict[int | str, dict[str, Any]] = {
    429: {
        "description": "Too many requests from this caller; see `Retry-After`",
        "headers": {
            "Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}
        },
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
}
