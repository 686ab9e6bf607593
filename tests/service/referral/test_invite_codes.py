"""Invite codes (SPEC §2.1): creation, stability, resolution, wrong codes and throttling."""

from __future__ import annotations

import asyncio

import pytest

from referral_service.invite_codes.attempts import CodeAttemptLimiter, TooManyAttempts
from referral_service.invite_codes.codes import ALPHABET
from service_kit.auth import CallerKind, Principal
from tests.service.harness import Platform
from tests.service.referral.steps import invite_code, self_bind


async def test_code_is_created_once_and_stable_per_user_and_app(platform: Platform) -> None:
    first = await invite_code(platform, "u-1")
    assert 6 <= len(first) <= 8 and set(first) <= set(ALPHABET)
    assert await invite_code(platform, "u-1") == first
    other_app = await invite_code(platform, "u-1", app="other-app")
    assert other_app != first
    assert await invite_code(platform, "u-2") != first


async def test_concurrent_first_requests_get_the_same_code(platform: Platform) -> None:
    codes = await asyncio.gather(*(invite_code(platform, "u-race") for _ in range(5)))
    assert len(set(codes)) == 1


async def test_service_resolves_a_code_case_and_dashes_forgiven(platform: Platform) -> None:
    code = await invite_code(platform, "u-1")
    spaced = f"{code[:4].lower()}-{code[4:]}"
    response = await platform.referral.get(f"/v1/invite-codes/{spaced}", headers=platform.service())
    assert response.status_code == 200, response.text
    assert response.json()["user_id"] == "u-1" and response.json()["code"] == code
    scoped = await platform.referral.get(
        f"/v1/invite-codes/{code}", params={"app_id": "other-app"}, headers=platform.service()
    )
    assert scoped.status_code == 404 and scoped.json()["code"] == "invite_code_not_found"


async def test_wrong_codes_are_clear_errors(platform: Platform) -> None:
    await invite_code(platform, "u-1")
    malformed = await self_bind(platform, "u-2", "O0I1LXYZ")
    assert malformed.status_code == 422 and malformed.json()["code"] == "invalid_invite_code"
    unknown = await self_bind(platform, "u-2", "ZZZZZZZZ")
    assert unknown.status_code == 404 and unknown.json()["code"] == "invite_code_not_found"
    assert unknown.headers["content-type"].startswith("application/problem+json")


async def test_another_tenants_or_apps_code_is_not_found(platform: Platform) -> None:
    code = await invite_code(platform, "u-1")
    other_tenant = await self_bind(platform, "u-2", code, tenant="tenant-b")
    assert other_tenant.status_code == 404
    other_app = await self_bind(platform, "u-2", code, app="other-app")
    assert other_app.status_code == 404
    service_b = await platform.referral.get(
        f"/v1/invite-codes/{code}", headers=platform.service("tenant-b")
    )
    assert service_b.status_code == 404


async def test_repeated_wrong_codes_are_throttled_per_caller(platform: Platform) -> None:
    good = await invite_code(platform, "u-owner")
    limit = platform.settings["referral"].code_failure_limit  # type: ignore[attr-defined]
    for i in range(limit):
        wrong = await self_bind(platform, "u-guesser", f"ZZZZZZ{ALPHABET[i]}")
        assert wrong.status_code == 404, wrong.text
    blocked = await self_bind(platform, "u-guesser", "ZZZZZZZZ")
    assert blocked.status_code == 429
    assert blocked.json()["code"] == "too_many_attempts"
    assert 0 < int(blocked.headers["Retry-After"]) <= 600
    # While blocked even the right code is refused: a guesser learns nothing.
    right = await self_bind(platform, "u-guesser", good)
    assert right.status_code == 429
    # Other callers, and the same user id in another tenant, are not affected.
    assert (await self_bind(platform, "u-other", good)).status_code == 201
    elsewhere = await self_bind(platform, "u-guesser", "ZZZZZZZZ", tenant="tenant-b")
    assert elsewhere.status_code == 404


async def test_service_lookups_are_throttled_with_their_own_limit(platform: Platform) -> None:
    limit = platform.settings["referral"].code_failure_limit_service  # type: ignore[attr-defined]
    assert limit > platform.settings["referral"].code_failure_limit  # type: ignore[attr-defined]
    for _ in range(limit):
        response = await platform.referral.get(
            "/v1/invite-codes/ZZZZZZZZ", headers=platform.service(sub="scraper")
        )
        assert response.status_code == 404
    response = await platform.referral.get(
        "/v1/invite-codes/ZZZZZZZZ", headers=platform.service(sub="scraper")
    )
    assert response.status_code == 429 and "Retry-After" in response.headers
    other = await platform.referral.get(
        "/v1/invite-codes/ZZZZZZZZ", headers=platform.service(sub="backend")
    )
    assert other.status_code == 404


async def test_code_endpoints_check_the_caller_kind(platform: Platform) -> None:
    as_operator = await platform.referral.get("/v1/me/invite-code", headers=platform.operator())
    assert as_operator.status_code == 403
    as_user = await platform.referral.get("/v1/invite-codes/ABCDEFGH", headers=platform.user("u"))
    assert as_user.status_code == 403
    anonymous = await platform.referral.get("/v1/me/invite-code")
    assert anonymous.status_code == 401


async def test_the_window_starts_at_the_first_failure_and_later_ones_do_not_extend_it(
    platform: Platform,
) -> None:
    """Plain SET NX EX + INCR in one MULTI: also on Redis 6.2, which has no EXPIRE NX."""
    redis = platform.apps["referral"].state.redis
    prefix = platform.settings["referral"].queue_prefix
    limiter = CodeAttemptLimiter(redis, prefix, limit=3, window_seconds=600)
    guesser = Principal(sub="g", tenant_id="tenant-a", kind=CallerKind.user, app_id="broker-app")
    key = limiter.failures.key(guesser)
    await limiter.record_failure(guesser)
    assert await redis.get(key) == b"1" and 0 < await redis.ttl(key) <= 600
    await redis.expire(key, 5)  # as if the window were nearly over
    await limiter.record_failure(guesser)
    await limiter.record_failure(guesser)
    assert await redis.get(key) == b"3" and 0 < await redis.ttl(key) <= 5
    with pytest.raises(TooManyAttempts) as blocked:
        await limiter.check(guesser)
    assert blocked.value.retry_after <= 5
    await redis.delete(key)  # the window ended: counting starts afresh
    await limiter.record_failure(guesser)
    await limiter.check(guesser)
    assert await redis.get(key) == b"1" and 5 < await redis.ttl(key) <= 600
