"""Per-caller rate limits on writes and app logins (Redis fixed windows, service_kit
.ratelimit), and the caller checked before the body is read (service_kit.routing)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from tests.service.harness import Platform

PRIZE = {
    "type": "coupon",
    "name": "30-day market data",
    "coupon_type": "market_data",
    "title": {"en": "Market data card"},
    "validity": {"days_from_issue": 30},
}


@contextmanager
def limits(platform: Platform, service: str, **values: int) -> Iterator[None]:
    """Lower a running app's limits for one test (the limiter reads them per request)."""
    settings = platform.apps[service].state.settings
    before = {name: getattr(settings, name) for name in values}
    for name, value in values.items():
        setattr(settings, name, value)
    try:
        yield
    finally:
        for name, value in before.items():
            setattr(settings, name, value)


def _rate_limited(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "rate_limited"
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert response.json()["retry_after"] == int(response.headers["Retry-After"])


async def test_an_operator_over_the_write_limit_gets_429_and_writes_nothing(
    platform: Platform,
) -> None:
    sub = f"burst-{uuid.uuid4().hex[:8]}"
    ops = platform.operator(sub=sub)

    async def create(headers: dict[str, str]) -> int:
        return (await platform.reward.post("/v1/prizes", json=PRIZE, headers=headers)).status_code

    with limits(platform, "reward", write_limit_operator=3):
        assert [await create(ops) for _ in range(3)] == [201, 201, 201]
        refused = await platform.reward.post("/v1/prizes", json=PRIZE, headers=ops)
        _rate_limited(refused)
        assert refused.json()["limit"] == 3
        # reads are not limited, and the refused write created nothing
        listed = await platform.reward.get("/v1/prizes", headers=ops)
        assert listed.status_code == 200 and len(listed.json()["items"]) == 3
        # the limit is the caller's own: another operator, or the same subject in another
        # tenant, is another caller
        assert await create(platform.operator(sub=f"calm-{uuid.uuid4().hex[:8]}")) == 201
        assert await create(platform.operator("tenant-b", sub=sub)) == 201


def _login(user: str, n: int) -> dict[str, Any]:
    return {
        "event_id": f"login-{user}-{n}",
        "type": "app.login",
        "user_id": user,
        "app_id": "broker-app",
        "occurred_at": "2026-11-23T01:00:00Z",
        "device_id": f"device-{n}",
    }


async def test_app_logins_are_limited_per_user(platform: Platform) -> None:
    user = f"u-{uuid.uuid4().hex[:8]}"
    with limits(platform, "activity", login_limit=3):
        answers = [
            await platform.activity.post(
                "/v1/events", json=_login(user, n), headers=platform.user(user)
            )
            for n in range(3)
        ]
        assert [r.status_code for r in answers] == [202, 202, 202], answers[-1].text
        _rate_limited(
            await platform.activity.post(
                "/v1/events", json=_login(user, 3), headers=platform.user(user)
            )
        )
        # a batch of logins counts each one
        other = f"u-{uuid.uuid4().hex[:8]}"
        batch = {"events": [_login(other, n) for n in range(4)]}
        _rate_limited(
            await platform.activity.post(
                "/v1/events/batch", json=batch, headers=platform.user(other)
            )
        )
        # a trusted back end reporting logins for its users is not an app user logging in
        for n in range(4, 8):
            sent = await platform.activity.post(
                "/v1/events", json=_login(user, n), headers=platform.service()
            )
            assert sent.status_code == 202, sent.text


async def test_the_caller_is_checked_before_the_body_is_read(platform: Platform) -> None:
    garbage = b'{"type": "coupon", '
    json_type = {"Content-Type": "application/json"}
    anonymous = await platform.reward.post("/v1/prizes", content=garbage, headers=json_type)
    assert anonymous.status_code == 401 and anonymous.json()["code"] == "unauthenticated"
    forged = {**json_type, "Authorization": "Bearer not-a-token"}
    bad_token = await platform.reward.post("/v1/prizes", content=garbage, headers=forged)
    assert bad_token.status_code == 401 and bad_token.json()["code"] == "invalid_token"
    reader = {**json_type, **platform.operator(permissions=["RightsSystemRead"])}
    not_allowed = await platform.reward.post("/v1/prizes", content=garbage, headers=reader)
    assert not_allowed.status_code == 403
    writer = {**json_type, **platform.operator()}
    parsed = await platform.reward.post("/v1/prizes", content=garbage, headers=writer)
    assert parsed.status_code == 422 and parsed.json()["code"] == "validation_error"
    # the same on the other services, with a path parameter and on a PUT
    for client, method, path in (
        (platform.activity, "POST", "/v1/activities"),
        (platform.activity, "PUT", "/v1/tenant-settings"),
        (platform.referral, "POST", "/v1/bindings"),
        (platform.reward, "POST", "/v1/reward-records/not-a-uuid/cancel"),
    ):
        answer = await client.request(method, path, content=garbage, headers=json_type)
        assert answer.status_code == 401, (path, answer.text)
