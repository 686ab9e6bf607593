"""Event ingestion: typed validation, idempotency, who may post, and the batch endpoint."""

from __future__ import annotations

from sqlalchemy import func, select

from activity_service.db import OutboxMessage
from activity_service.events.models import Event
from tests.service.evaluation.steps import event, money
from tests.service.harness import Platform

WHEN = "2026-12-02T09:30:00+08:00"


async def _count(platform: Platform, model: type) -> int:
    async with platform.db("activity").session() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_single_event_replay_and_conflict(platform: Platform) -> None:
    body = money("cash.deposited", "u1", WHEN, "1000.50", "USD")
    first = await platform.activity.post("/v1/events", json=body, headers=platform.service())
    assert first.status_code == 202 and first.json()["status"] == "accepted"
    # same content in another offset and scale is the same event
    same = {**body, "occurred_at": "2026-12-02T01:30:00+00:00", "amount": "1000.500"}
    again = await platform.activity.post("/v1/events", json=same, headers=platform.service())
    assert again.status_code == 202
    assert again.json() == {**first.json(), "status": "duplicate"}
    changed = {**body, "amount": "2000"}
    conflict = await platform.activity.post("/v1/events", json=changed, headers=platform.service())
    assert conflict.status_code == 409
    assert conflict.json()["code"] == "event_id_conflict"
    assert await _count(platform, Event) == 1
    # one evaluation job queued, not three
    assert await _count(platform, OutboxMessage) == 1


async def test_typed_validation_gives_precise_problems(platform: Platform) -> None:
    cases = [
        ({**money("cash.deposited", "u1", WHEN, "100"), "amount": "-5"}, "amount"),
        ({**money("cash.deposited", "u1", WHEN, "100"), "currency": "usd"}, "currency"),
        (event("cash.withdrawn", "u1", WHEN), "needs amount and currency"),
        (event("app.login", "u1", WHEN), "app.login needs device_id"),
        (event("user.registered", "u1", WHEN, amount="5", currency="HKD"), "carries no amount"),
        (event("user.registered", "u1", "2026-12-02T09:30:00"), "time zone offset"),
        (event("enterprise.certified", "u1", WHEN), "needs enterprise_id"),
        ({**event("user.registered", "u1", WHEN), "colour": "red"}, "colour"),
        ({**event("user.registered", "u1", WHEN), "type": "user.exploded"}, "type"),
    ]
    for body, needle in cases:
        response = await platform.activity.post("/v1/events", json=body, headers=platform.service())
        assert response.status_code == 422, (body, response.text)
        problem = response.json()
        assert problem["code"] == "validation_error"
        assert needle in problem["detail"] or needle in str(problem["errors"]), problem


async def test_only_trusted_back_ends_post_business_events(platform: Platform) -> None:
    registration = event("user.registered", "u1", WHEN)
    as_user = await platform.activity.post(
        "/v1/events", json=registration, headers=platform.user("u1")
    )
    assert as_user.status_code == 403 and as_user.json()["code"] == "event_not_allowed"
    as_operator = await platform.activity.post(
        "/v1/events", json=registration, headers=platform.operator()
    )
    assert as_operator.status_code == 403
    own_login = event("app.login", "u1", WHEN, device_id="dev-1")
    ok = await platform.activity.post("/v1/events", json=own_login, headers=platform.user("u1"))
    assert ok.status_code == 202
    someone_else = event("app.login", "u2", WHEN, device_id="dev-1")
    refused = await platform.activity.post(
        "/v1/events", json=someone_else, headers=platform.user("u1")
    )
    assert refused.status_code == 403 and refused.json()["code"] == "event_not_own"
    other_app = event("app.login", "u1", WHEN, device_id="dev-1", app_id="other-app")
    refused = await platform.activity.post(
        "/v1/events", json=other_app, headers=platform.user("u1")
    )
    assert refused.status_code == 403


async def test_batch_gives_per_item_results(platform: Platform) -> None:
    known = money("cash.deposited", "u9", WHEN, "10")
    await platform.activity.post("/v1/events", json=known, headers=platform.service())
    good = event("user.registered", "u1", WHEN)
    items = [
        good,
        {**money("cash.deposited", "u1", WHEN, "1"), "amount": "0"},  # not positive
        known,  # stored before: duplicate
        {**known, "amount": "11"},  # stored before with other content
        good,  # repeated inside the batch
        {**good, "user_id": "u2"},  # same id, other content, inside the batch
        "not an object",
    ]
    response = await platform.activity.post(
        "/v1/events/batch", json={"events": items}, headers=platform.service()
    )
    assert response.status_code == 200, response.text
    result = response.json()
    statuses = [(i["index"], i["status"]) for i in result["items"]]
    assert statuses == [
        (0, "accepted"),
        (1, "rejected"),
        (2, "duplicate"),
        (3, "rejected"),
        (4, "duplicate"),
        (5, "rejected"),
        (6, "rejected"),
    ]
    codes = {i["index"]: i["problem"]["code"] for i in result["items"] if i["problem"]}
    assert codes == {
        1: "validation_error",
        3: "event_id_conflict",
        5: "event_id_conflict",
        6: "validation_error",
    }
    assert (result["accepted"], result["duplicates"], result["rejected"]) == (1, 2, 4)
    assert await _count(platform, Event) == 2

    # replaying the whole batch stores nothing new
    again = await platform.activity.post(
        "/v1/events/batch", json={"events": items}, headers=platform.service()
    )
    assert again.json()["accepted"] == 0


async def test_a_replay_in_a_batch_is_compared_with_the_stored_event(platform: Platform) -> None:
    stored = money("cash.deposited", "u9", WHEN, "10")
    await platform.activity.post("/v1/events", json=stored, headers=platform.service())
    other = {**stored, "amount": "99"}
    replay = {**stored, "amount": "10.00"}  # the same value: the same event
    response = await platform.activity.post(
        "/v1/events/batch", json={"events": [other, replay, other]}, headers=platform.service()
    )
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert [i["status"] for i in items] == ["rejected", "duplicate", "rejected"]
    assert items[0]["problem"]["code"] == "event_id_conflict"
    original = await platform.activity.post("/v1/events", json=stored, headers=platform.service())
    assert items[1]["received_at"] == original.json()["received_at"]
    assert await _count(platform, Event) == 1
    # inside a batch that stores the id, later items still compare with its first occurrence
    fresh = event("user.registered", "u3", WHEN)
    response = await platform.activity.post(
        "/v1/events/batch",
        json={"events": [fresh, {**fresh, "user_id": "u4"}, fresh]},
        headers=platform.service(),
    )
    assert [i["status"] for i in response.json()["items"]] == ["accepted", "rejected", "duplicate"]


async def test_batch_limits_and_user_rules(platform: Platform) -> None:
    too_many = [event("user.registered", f"u{i}", WHEN) for i in range(1001)]
    response = await platform.activity.post(
        "/v1/events/batch", json={"events": too_many}, headers=platform.service()
    )
    assert response.status_code == 422
    mixed = [event("app.login", "u1", WHEN, device_id="d"), event("user.registered", "u1", WHEN)]
    as_user = await platform.activity.post(
        "/v1/events/batch", json={"events": mixed}, headers=platform.user("u1")
    )
    assert as_user.status_code == 200
    assert [i["status"] for i in as_user.json()["items"]] == ["accepted", "rejected"]
    thousand = [event("user.registered", f"u{i}", WHEN) for i in range(1000)]
    full = await platform.activity.post(
        "/v1/events/batch", json={"events": thousand}, headers=platform.service()
    )
    assert full.status_code == 200 and full.json()["accepted"] == 1000
