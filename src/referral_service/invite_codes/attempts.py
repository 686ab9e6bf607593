"""Throttling of wrong invite codes, so codes cannot be enumerated by guessing.

A fixed window per caller (tenant + subject) in Redis: every wrong code (malformed or
unknown) counts; once the limit is reached every lookup by that caller — right or wrong —
is refused with 429 until the window ends, so a guesser learns nothing while blocked.
Redis being down must not stop users from binding: the limiter then fails open and logs.
"""

from __future__ import annotations

import logging

from redis.asyncio import Redis
from redis.exceptions import RedisError

from service_kit.auth import Principal
from service_kit.errors import ProblemError

log = logging.getLogger(__name__)


class TooManyAttempts(ProblemError):
    status, code, title = 429, "too_many_attempts", "Too many wrong invite codes"

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            f"Too many wrong invite codes; try again in {retry_after} seconds.",
            retry_after=retry_after,
        )
        self.retry_after = retry_after


class CodeAttemptLimiter:
    def __init__(self, redis: Redis, prefix: str, limit: int, window_seconds: int) -> None:
        self.redis = redis
        self.prefix = prefix
        self.limit = limit
        self.window_seconds = window_seconds

    def _key(self, principal: Principal) -> str:
        return f"{self.prefix}:referral:code-failures:{principal.tenant_id}:{principal.actor}"

    async def check(self, principal: Principal) -> None:
        """Raise ``TooManyAttempts`` while the caller is over the limit."""
        key = self._key(principal)
        try:
            failures = await self.redis.get(key)
            if failures is None or int(failures) < self.limit:
                return
            ttl = await self.redis.ttl(key)
        except RedisError:
            log.warning("invite code limiter unavailable; allowing the lookup", exc_info=True)
            return
        raise TooManyAttempts(retry_after=max(int(ttl), 1))

    async def record_failure(self, principal: Principal) -> None:
        key = self._key(principal)
        try:
            # One MULTI: the first failure creates the counter with the window's TTL (SET NX
            # EX), later ones only INCR it, which keeps the TTL, so the window starts at the
            # first failure and is not extended. Works on Redis 6.2 (no EXPIRE NX, Redis 7).
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.set(key, 0, ex=self.window_seconds, nx=True)
                pipe.incr(key)
                await pipe.execute()
        except RedisError:
            log.warning("invite code limiter unavailable; failure not counted", exc_info=True)
