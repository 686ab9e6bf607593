"""Idempotency-Key on creating POSTs (service_kit.idempotency), on real PostgreSQL: one
effect per key, the stored answer replayed, keys per tenant and caller."""

from __future__ import annotations

import asyncio
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


async def _create_prize(
    platform: Platform, key: str | None, body: dict[str, Any] | None = None, **who: Any
) -> httpx.Response:
    headers = platform.operator(**who)
    if key is not None:
        headers["Idempotency-Key"] = key
    return await platform.reward.post("/v1/prizes", json=body or PRIZE, headers=headers)


async def _prize_count(platform: Platform, tenant: str = "tenant-a") -> int:
    listed = await platform.reward.get("/v1/prizes", headers=platform.operator(tenant))
    return len(listed.json()["items"])


async def test_same_key_same_body_replays_the_stored_answer(platform: Platform) -> None:
    first = await _create_prize(platform, "k1")
    # the same JSON with its keys in another order is the same request
    again = await _create_prize(platform, "k1", dict(reversed(list(PRIZE.items()))))
    assert (first.status_code, again.status_code) == (201, 201), again.text
    assert again.content == first.content
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert await _prize_count(platform) == 1
    # without a key nothing is replayed
    assert (await _create_prize(platform, None)).status_code == 201
    assert (await _create_prize(platform, None)).status_code == 201
    assert await _prize_count(platform) == 3


async def test_same_key_other_request_is_refused(platform: Platform) -> None:
    assert (await _create_prize(platform, "k1")).status_code == 201
    other = await _create_prize(platform, "k1", {**PRIZE, "name": "another"})
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    assert other.headers["content-type"].startswith("application/problem+json")
    # the same key on another operation is another request too
    segment = await platform.activity.post(
        "/v1/segments",
        json={"name": "vip", "source": "upload"},
        headers={**platform.operator(), "Idempotency-Key": "k1"},
    )
    assert segment.status_code == 201, segment.text  # another service, another table
    again = await platform.activity.post(
        "/v1/segments",
        json={"name": "vip-2", "source": "upload"},
        headers={**platform.operator(), "Idempotency-Key": "k1"},
    )
    assert again.status_code == 422 and again.json()["code"] == "idempotency_key_reused"
    assert await _prize_count(platform) == 1


async def test_keys_belong_to_one_tenant_and_one_caller(platform: Platform) -> None:
    mine = await _create_prize(platform, "k1")
    colleague = await _create_prize(platform, "k1", sub="ops-2")
    elsewhere = await _create_prize(platform, "k1", tenant="tenant-b")
    assert {mine.status_code, colleague.status_code, elsewhere.status_code} == {201}
    assert len({r.json()["id"] for r in (mine, colleague, elsewhere)}) == 3
    assert all("Idempotent-Replayed" not in r.headers for r in (colleague, elsewhere))
    assert await _prize_count(platform) == 2
    assert await _prize_count(platform, "tenant-b") == 1


async def test_concurrent_requests_with_one_key_have_one_effect(platform: Platform) -> None:
    answers = await asyncio.gather(*(_create_prize(platform, "burst") for _ in range(6)))
    assert [r.status_code for r in answers] == [201] * 6, [r.text for r in answers]
    assert len({r.content for r in answers}) == 1
    assert sum("Idempotent-Replayed" in r.headers for r in answers) == 5
    assert await _prize_count(platform) == 1


async def test_a_refused_request_leaves_the_key_free(platform: Platform) -> None:
    bad = await _create_prize(platform, "k1", {**PRIZE, "validity": {}})
    assert bad.status_code == 422 and bad.json()["code"] != "idempotency_key_reused"
    # nothing was kept for the key: the corrected request is new, not a mismatch
    fixed = await _create_prize(platform, "k1")
    assert fixed.status_code == 201 and "Idempotent-Replayed" not in fixed.headers
    # a wrong permission never claims or reads a key
    reader = platform.operator(permissions=["RightsSystemRead"])
    refused = await platform.reward.post(
        "/v1/prizes", json=PRIZE, headers={**reader, "Idempotency-Key": "k1"}
    )
    assert refused.status_code == 403


async def test_invalid_keys_are_422(platform: Platform) -> None:
    for key in ("", "k" * 129):
        answer = await _create_prize(platform, key)
        assert answer.status_code == 422, (key, answer.text)
        assert answer.json()["code"] == "validation_error"
    assert await _prize_count(platform) == 0


async def test_referral_and_activity_posts_replay_too(platform: Platform) -> None:
    headers = {**platform.operator(), "Idempotency-Key": "bind-1"}
    body = {"invitee_id": "u-b", "inviter_id": "u-a", "node": "registration"}
    first = await platform.referral.post("/v1/bindings", json=body, headers=headers)
    again = await platform.referral.post("/v1/bindings", json=body, headers=headers)
    assert (first.status_code, again.status_code) == (201, 201), again.text
    assert again.content == first.content and "Idempotent-Replayed" in again.headers
    # without the key the second binding is refused as a duplicate, as before
    plain = await platform.referral.post("/v1/bindings", json=body, headers=platform.operator())
    assert plain.status_code == 409
    rates = {
        "rates": [
            {
                "source": "USD",
                "target": "HKD",
                "rate": "7.8",
                "effective_at": "2026-11-01T00:00:00Z",
            }
        ]
    }
    fx = {**platform.operator(), "Idempotency-Key": "fx-1"}
    one = await platform.activity.post("/v1/fx-rates", json=rates, headers=fx)
    two = await platform.activity.post("/v1/fx-rates", json=rates, headers=fx)
    assert (one.status_code, two.status_code) == (201, 201), two.text
    assert two.content == one.content
