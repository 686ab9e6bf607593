"""Dry-run of a draft activity over last month's stored events: who would have earned
what, at what cost in the base currency, with the caps that bite — and nothing written."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text

from activity_service.evaluation.models import EvaluationOutcome, Grant
from service_kit.db import Database
from tests.service.evaluation.steps import activity, money, post
from tests.service.harness import Platform

PERIOD = {"starts_at": "2026-11-01T00:00:00+08:00", "ends_at": "2026-12-01T00:00:00+08:00"}


async def priced_prize(platform: Platform, cost: str) -> str:
    response = await platform.reward.post(
        "/v1/prizes",
        json={
            "type": "coupon",
            "name": "market data",
            "coupon_type": "market_data",
            "title": {"en": "Market data card"},
            "validity": {"days_from_issue": 30},
            "cost_amount": cost,
            "cost_currency": "USD",
        },
        headers=platform.operator(),
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def dry_run(platform: Platform, activity_id: str, **body: Any) -> tuple[int, Any]:
    headers = body.pop("headers", None) or platform.operator()
    response = await platform.activity.post(
        f"/v1/activities/{activity_id}/dry-run", json={**PERIOD, **body}, headers=headers
    )
    return response.status_code, response.json()


async def written(db: Database) -> int:
    async with db.session() as session:
        grants = await session.scalar(select(func.count()).select_from(Grant))
        outcomes = await session.scalar(select(func.count()).select_from(EvaluationOutcome))
        messages = await session.scalar(text("SELECT count(*) FROM outbox_messages"))
    return int(grants or 0) + int(outcomes or 0) + int(messages or 0)


async def test_a_draft_is_dry_run_over_a_past_month(platform: Platform) -> None:
    platform.clock.set(datetime.fromisoformat("2026-12-10T12:00:00+08:00"))
    rate = {"source": "USD", "target": "HKD", "rate": "7.8", "effective_at": "2026-01-01T00:00:00Z"}
    fx = await platform.activity.post(
        "/v1/fx-rates", json={"rates": [rate]}, headers=platform.operator()
    )
    assert fx.status_code == 201, fx.text
    prize = await priced_prize(platform, "2")
    tiers = [
        {"id": t, "task": "deposit_reached", "threshold": v, "currency": "HKD", "prize_id": prize}
        for t, v in (("d10k", "10000"), ("d50k", "50000"))
    ]
    draft = await activity(
        platform, {"kind": "basic", "timing": "real_time", "rules": tiers}, publish=False
    )
    await post(
        platform,
        money("cash.deposited", "u1", "2026-11-05T10:00:00+08:00", "60000"),
        money("cash.deposited", "u2", "2026-11-06T10:00:00+08:00", "12000"),
        money("cash.deposited", "u3", "2026-12-05T10:00:00+08:00", "90000"),  # after the period
    )
    await platform.drain()
    before = await written(platform.db("activity"))

    status, body = await dry_run(platform, draft["id"])
    assert status == 200, body
    assert [(g["user_id"], g["rule_id"]) for g in body["items"]] == [
        ("u1", "d10k"),
        ("u1", "d50k"),
        ("u2", "d10k"),
    ]
    assert (body["users_evaluated"], body["grants_total"], body["users_rewarded"]) == (2, 3, 2)
    assert body["base_currency"] == "HKD"
    assert body["cost_complete"] is True
    assert float(body["cost_total"]) == 3 * 2 * 7.8
    assert body["caps"] == [] and body["next_cursor"] is None

    # A cap of one per user bites u1's second tier; pages move through the list.
    async with platform.db("activity").session() as session:
        await session.execute(
            text(
                "UPDATE activities SET config = jsonb_set(config, '{prize_limits}', "
                "CAST(:limits AS jsonb)) WHERE id = :id"
            ),
            {
                "limits": json.dumps([{"prize_id": prize, "max_per_user": 1}]),
                "id": uuid.UUID(draft["id"]),
            },
        )
    status, first = await dry_run(platform, draft["id"], limit=1)
    assert status == 200, first
    assert first["grants_total"] == 2 and first["refused"] == {"cap_reached": 1}
    assert [(c["limit"], c["prize_id"], c["value"], c["refused"]) for c in first["caps"]] == [
        ("per_user_cap", prize, "1", 1)
    ]
    assert first["caps"][0]["first_users"] == ["u1"] and first["caps"][0]["users"] == 1
    assert len(first["items"]) == 1 and first["next_cursor"] == "1"
    status, second = await dry_run(platform, draft["id"], limit=1, cursor="1")
    assert [g["user_id"] for g in second["items"]] == ["u2"] and second["next_cursor"] is None

    # The user limit bounds the work and says so.
    status, bounded = await dry_run(platform, draft["id"], user_limit=1)
    assert (bounded["users_evaluated"], bounded["users_truncated"]) == (1, True)

    # Nothing was written by any of them.
    assert await written(platform.db("activity")) == before


async def test_bad_dry_runs_are_refused(platform: Platform) -> None:
    platform.clock.set(datetime.fromisoformat("2026-12-10T12:00:00+08:00"))
    prize = await priced_prize(platform, "2")
    rules = [{"id": "r", "task": "register", "prize_id": prize}]
    draft = await activity(platform, {"kind": "basic", "rules": rules}, publish=False)
    cases = [
        ({"ends_at": "2026-12-31T00:00:00+08:00"}, 422, "period_not_over"),
        ({"starts_at": "2026-06-01T00:00:00+08:00"}, 422, "period_too_long"),
        ({"ends_at": "2026-10-01T00:00:00+08:00"}, 422, "invalid_period"),
        ({"cursor": "x1"}, 422, "invalid_cursor"),
    ]
    for body, status, code in cases:
        got, answer = await dry_run(platform, draft["id"], **body)
        assert (got, answer["code"]) == (status, code), answer
    got, answer = await dry_run(platform, draft["id"], user_limit=0)
    assert got == 422
    got, answer = await dry_run(platform, str(uuid.uuid4()))
    assert (got, answer["code"]) == (404, "activity_not_found")
    got, answer = await dry_run(platform, draft["id"], headers=platform.operator("tenant-b"))
    assert got == 404
    got, answer = await dry_run(platform, draft["id"], headers=platform.user("u1"))
    assert got == 403
