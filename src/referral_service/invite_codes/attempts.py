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
from service_kit.ratelimit import FixedWindow, TooManyRequests

log = logging.getLogger(__name__)


class TooManyAttempts(TooManyRequests):
    code, title = "too_many_attempts", "Too many wrong invite codes"

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            f"Too many wrong invite codes; try again in {retry_after} seconds.",
            retry_after=retry_after,
        )


class CodeAttemptLimiter:
    def __init__(self, redis: Redis, prefix: str, limit: int, window_seconds: int) -> None:
        # The window starts at the first failure and is not extended (service_kit.ratelimit).
        self.failures = FixedWindow(redis, prefix, "referral:code-failures", window_seconds)
        self.limit = limit

    async def check(self, principal: Principal) -> None:
        """Raise ``TooManyAttempts`` while the caller is over the limit."""
        try:
            failures, retry_after = await self.failures.current(principal)
        except RedisError:
            log.warning("invite code limiter unavailable; allowing the lookup", exc_info=True)
            return
        if failures >= self.limit:
            raise TooManyAttempts(retry_after=retry_after)

    async def record_failure(self, principal: Principal) -> None:
        try:
            await self.failures.add(principal)
        except RedisError:
            log.warning("invite code limiter unavailable; failure not counted", exc_info=True)
