"""Bad paths every service shares: no token, wrong kind or permission, another tenant,
invalid payloads — always problem+json, never a 500, never a partial write."""

from __future__ import annotations

import uuid

import pytest

from tests.service.flows import create_coupon_prize, create_register_activity, registered_event
from tests.service.harness import Platform


def _is_problem(response, status: int, code: str | None = None) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json"), (
        response.headers,
        response.text,
    )
    body = response.json()
    assert {"type", "title", "status", "detail", "code"} <= body.keys()
    assert body["status"] == status
    if code:
        assert body["code"] == code, body


@pytest.mark.parametrize(
    ("service", "path"),
    [
        ("activity", "/v1/activities"),
        ("reward", "/v1/prizes"),
        ("reward", "/v1/reward-records"),
        ("referral", "/v1/me/invite-code"),
        ("reward", "/v1/me/coupons"),
    ],
)
async def test_no_token_is_401(platform: Platform, service: str, path: str) -> None:
    _is_problem(await platform.clients[service].get(path), 401, "unauthenticated")


async def test_garbage_and_expired_tokens_are_401(platform: Platform) -> None:
    bad = {"Authorization": "Bearer not-a-jwt"}
    _is_problem(await platform.reward.get("/v1/prizes", headers=bad), 401, "invalid_token")
    from service_kit.auth import encode_token

    expired = encode_token(
        platform.secret,
        sub="x",
        tenant_id="tenant-a",
        kind="operator",
        permissions=["RightsSystemFull"],
        ttl_seconds=-10,
    )
    _is_problem(
        await platform.reward.get("/v1/prizes", headers={"Authorization": f"Bearer {expired}"}),
        401,
        "token_expired",
    )
    forged = encode_token(
        "another-secret-of-sufficient-length-0123456789",
        sub="x",
        tenant_id="tenant-a",
        kind="operator",
        permissions=["RightsSystemFull"],
    )
    _is_problem(
        await platform.reward.get("/v1/prizes", headers={"Authorization": f"Bearer {forged}"}),
        401,
        "invalid_token",
    )


async def test_wrong_permission_or_kind_is_403(platform: Platform) -> None:
    activity_only = platform.operator(permissions=["ActivityCenterFull"])
    _is_problem(await platform.reward.get("/v1/prizes", headers=activity_only), 403, "forbidden")
    rights_only = platform.operator(permissions=["RightsSystemFull"])
    _is_problem(
        await platform.activity.get("/v1/activities", headers=rights_only), 403, "forbidden"
    )
    reader = platform.operator(permissions=["ActivityCenterRead"])
    response = await platform.activity.post(
        "/v1/activities/00000000-0000-0000-0000-000000000000/publish", headers=reader
    )
    _is_problem(response, 403, "forbidden")
    # An app user is not an operator, and an operator is not an app user.
    _is_problem(await platform.reward.get("/v1/prizes", headers=platform.user("u1")), 403)
    _is_problem(await platform.reward.get("/v1/me/coupons", headers=platform.operator()), 403)


async def test_app_user_may_not_post_business_events(platform: Platform) -> None:
    event = registered_event("u1", "evt-forbidden")
    response = await platform.activity.post("/v1/events", json=event, headers=platform.user("u1"))
    _is_problem(response, 403, "event_not_allowed")
    login_for_other = {
        "event_id": "evt-login",
        "type": "app.login",
        "user_id": "someone-else",
        "app_id": "broker-app",
        "occurred_at": "2026-11-23T01:00:00+00:00",
        "device_id": "d1",
    }
    response = await platform.activity.post(
        "/v1/events", json=login_for_other, headers=platform.user("u1")
    )
    _is_problem(response, 403, "event_not_own")
    own_login = {**login_for_other, "user_id": "u1"}
    response = await platform.activity.post(
        "/v1/events", json=own_login, headers=platform.user("u1")
    )
    assert response.status_code == 202, response.text


async def test_another_tenants_ids_are_404(platform: Platform) -> None:
    prize = await create_coupon_prize(platform, tenant="tenant-a")
    activity = await create_register_activity(platform, prize["id"], tenant="tenant-a")
    other = platform.operator(tenant="tenant-b")
    _is_problem(await platform.reward.get(f"/v1/prizes/{prize['id']}", headers=other), 404)
    _is_problem(await platform.activity.get(f"/v1/activities/{activity['id']}", headers=other), 404)
    _is_problem(
        await platform.activity.get(
            f"/v1/activities/by-code/{activity['activity_code']}", headers=other
        ),
        404,
    )
    _is_problem(
        await platform.activity.post(f"/v1/activities/{activity['id']}/close", headers=other), 404
    )
    listed = await platform.activity.get("/v1/activities", headers=other)
    assert listed.json()["items"] == []
    # A prize of tenant A cannot be used by an activity of tenant B.
    response = await platform.activity.post(
        "/v1/activities",
        headers=other,
        json={
            "kind": "basic",
            "name": {"en": "x"},
            "starts_at": "2026-11-01T00:00:00Z",
            "ends_at": "2026-12-01T00:00:00Z",
            "rules": [{"task": "register", "prize_id": prize["id"]}],
        },
    )
    _is_problem(response, 422, "prize_not_found")


async def test_invalid_payloads_are_422_problems(platform: Platform) -> None:
    op = platform.operator()
    cases = [
        (platform.reward, "/v1/prizes", {"type": "voucher", "name": "x"}),
        (
            platform.reward,
            "/v1/prizes",
            {"type": "cash", "name": "x", "amount": "-5", "currency": "HKD"},
        ),
        (
            platform.reward,
            "/v1/prizes",
            {"type": "cash", "name": "x", "amount": "5", "currency": "hkd"},
        ),
        (
            platform.activity,
            "/v1/activities",
            {
                "kind": "basic",
                "name": {},
                "starts_at": "2026-11-01T00:00:00Z",
                "ends_at": "2026-12-01T00:00:00Z",
                "rules": [],
            },
        ),
        (
            platform.activity,
            "/v1/activities",
            {
                "kind": "non_standard",
                "name": {"en": "x"},
                "starts_at": "2026-12-01T00:00:00Z",
                "ends_at": "2026-11-01T00:00:00Z",
            },
        ),
    ]
    # Activity configuration rules answer with their own codes (activities/validation.py).
    codes = ["validation_error"] * 3 + ["name_required", "window_invalid"]
    for (client, path, body), code in zip(cases, codes, strict=True):
        _is_problem(await client.post(path, json=body, headers=op), 422, code)
    not_json = await platform.reward.post(
        "/v1/prizes", content=b"{not json", headers={**op, "Content-Type": "application/json"}
    )
    _is_problem(not_json, 422, "validation_error")
    bad_event = {**registered_event("u1", "evt-bad"), "occurred_at": "yesterday"}
    _is_problem(
        await platform.activity.post("/v1/events", json=bad_event, headers=platform.service()), 422
    )
    money_without_amount = {**registered_event("u1", "evt-dep"), "type": "cash.deposited"}
    _is_problem(
        await platform.activity.post(
            "/v1/events", json=money_without_amount, headers=platform.service()
        ),
        422,
    )
    _is_problem(
        await platform.reward.get("/v1/prizes", params={"cursor": "%%%"}, headers=op),
        422,
        "invalid_cursor",
    )
    _is_problem(await platform.reward.get("/v1/prizes", params={"limit": 100000}, headers=op), 422)
    listed = await platform.reward.get("/v1/prizes", headers=op)
    assert listed.json()["items"] == []  # nothing was written by the refused requests


async def test_unknown_record_and_prize_are_404(platform: Platform) -> None:
    op = platform.operator()
    _is_problem(
        await platform.reward.get(f"/v1/reward-records/{uuid.uuid4()}", headers=op),
        404,
        "record_not_found",
    )
    _is_problem(
        await platform.reward.get(f"/v1/prizes/{uuid.uuid4()}", headers=op), 404, "prize_not_found"
    )
    _is_problem(await platform.reward.get("/v1/prizes/not-a-uuid", headers=op), 422)


async def test_pagination_walks_every_item_once(platform: Platform) -> None:
    for _ in range(5):
        await create_coupon_prize(platform)
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (
            await platform.reward.get("/v1/prizes", params=params, headers=platform.operator())
        ).json()
        seen += [p["id"] for p in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 5 == len(set(seen))


async def test_health_and_readiness(platform: Platform) -> None:
    for client in platform.clients.values():
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        ready = await client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["checks"] == {
            "database": "ok",
            "redis": "ok",
        }
        response = await client.get("/healthz", headers={"X-Request-ID": "req-123"})
        assert response.headers["x-request-id"] == "req-123"


async def test_bodies_over_the_limit_are_413_problems_and_store_nothing(
    platform: Platform,
) -> None:
    big = {**registered_event("u-huge", "huge"), "nickname": "x" * 70_000}
    response = await platform.activity.post("/v1/events", json=big, headers=platform.service())
    # Refused by the framework's body limit before the body is read into memory.
    assert response.status_code == 413, response.text

    batch = {"events": [registered_event(f"u-b{i}", f"b{i}") for i in range(3)]}
    padded = {**batch, "padding": "x" * (5 * 1024 * 1024)}
    response = await platform.activity.post(
        "/v1/events/batch", json=padded, headers=platform.service()
    )
    assert response.status_code == 413, response.text
    ok = await platform.activity.post("/v1/events/batch", json=batch, headers=platform.service())
    assert ok.status_code == 200 and ok.json()["accepted"] == 3, ok.text
    stored = await platform.activity.post(
        "/v1/events", json=registered_event("u-huge", "huge"), headers=platform.service()
    )
    assert stored.json()["status"] == "accepted"  # the refused one was never stored


async def test_values_postgres_cannot_store_are_422_problems_not_500(platform: Platform) -> None:
    """A NUL character in text (JSON body or query string) or a date out of range once in
    UTC is the caller's input: 422 ``invalid_value``, nothing stored, no value echoed."""
    nul = {**registered_event("x", "nul-1"), "user_id": "a\u0000b"}
    response = await platform.activity.post("/v1/events", json=nul, headers=platform.service())
    assert response.status_code == 422, response.text
    assert response.json()["code"] in {"invalid_value", "validation_error"}
    assert "a\u0000b" not in response.text

    response = await platform.reward.get(
        "/v1/coupons", params={"user_id": "a\u0000b"}, headers=platform.operator()
    )
    assert response.status_code == 422, response.text

    late = {**registered_event("u-late", "late-1"), "occurred_at": "9999-12-31T23:59:59-12:00"}
    response = await platform.activity.post("/v1/events", json=late, headers=platform.service())
    assert response.status_code == 422, response.text
    again = await platform.activity.post(
        "/v1/events", json=registered_event("u-late", "late-1"), headers=platform.service()
    )
    assert again.json()["status"] == "accepted"  # the refused one was never stored
