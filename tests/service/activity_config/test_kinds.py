"""Each kind's path: create (with generated codes), read, edit, publish, close, audit."""

from __future__ import annotations

import re
from typing import Any

from tests.service.activity_config.helpers import (
    act,
    basic_body,
    create,
    non_standard_body,
    patch,
    prizes,
    referral_body,
    team_body,
)
from tests.service.harness import Platform

CODE = re.compile(r"^ACT-[0-9A-HJKMNP-TV-Z]{8}$")
BIZ = re.compile(r"^BIZ-[0-9A-HJKMNP-TV-Z]{8}$")


async def _lifecycle(platform: Platform, activity: dict[str, Any], edit: dict[str, Any]) -> None:
    assert activity["status"] == "draft" and activity["version"] == 1
    assert CODE.match(activity["activity_code"]) and BIZ.match(activity["business_code"])
    assert activity["allowed_operations"] == ["close", "delete", "edit", "publish", "view"]

    got = await platform.activity.get(
        f"/v1/activities/{activity['id']}", headers=platform.operator()
    )
    assert got.status_code == 200 and got.headers["ETag"] == '"1"'
    by_code = await platform.activity.get(
        f"/v1/activities/by-code/{activity['activity_code']}", headers=platform.service()
    )
    assert by_code.status_code == 200 and by_code.json()["id"] == activity["id"]

    edited = await patch(platform, activity, edit, version=1)
    assert edited.status_code == 200, edited.text
    assert edited.headers["ETag"] == '"2"'
    assert edited.json()["activity_code"] == activity["activity_code"]

    published = await act(platform, activity, "publish")
    assert published.status_code == 200, published.text
    assert published.json()["status"] == "running"
    assert published.json()["allowed_operations"] == ["close", "edit", "view"]

    closed = await act(platform, activity, "close")
    assert closed.status_code == 200 and closed.json()["status"] == "closed"
    assert closed.json()["allowed_operations"] == ["view"]

    trail = await platform.activity.get(
        f"/v1/activities/{activity['id']}/audit", headers=platform.operator()
    )
    entries = sorted(trail.json()["items"], key=lambda e: e["version"])
    assert [e["action"] for e in entries] == ["created", "updated", "published", "closed"]
    assert all(e["actor"] == "operator:ops-1" for e in entries)
    assert set(entries[1]["changes"]) == set(edit)


async def test_basic_activity_path(platform: Platform) -> None:
    p = await prizes(platform, 3)
    activity = await create(platform, basic_body(p))
    assert activity["attribute"] == "new_user"
    config = activity["config"]
    assert config["timing"] == "real_time"
    assert [r["id"] for r in config["rules"]] == ["r1", "r2"]
    assert config["rules"][0] == {
        "id": "r1",
        "task": "open_account",
        "threshold": None,
        "currency": None,
        "prize_id": p[0],
        "lock_up": None,
        "enterprise_id": None,
    }
    assert config["rules"][1]["threshold"] == "10000"
    assert config["rules"][1]["lock_up"] == {
        "amount": "10000",
        "currency": "HKD",
        "days": 30,
        "issue_after_lock": True,
    }
    await _lifecycle(platform, activity, {"remarks": "more budget", "attribute": "old_user"})


async def test_referral_tiered_path(platform: Platform) -> None:
    p = await prizes(platform, 4)
    activity = await create(platform, referral_body(p))
    assert activity["attribute"] == "regular"
    config = activity["config"]
    assert config["reward_type"] == "tiered"
    rule = config["rules"][0]
    assert rule["id"] == "r1" and rule["prize_id"] is None and rule["invitee_prize_id"] == p[2]
    assert [(t["id"], t["min_invites"], t["max_invites"]) for t in rule["tiers"]] == [
        ("t1", 1, 5),
        ("t2", 6, None),
    ]
    assert rule["tiers"][1]["bonus_prize_id"] == p[3]
    assert config["prize_limits"] == [{"prize_id": p[0], "max_per_user": 5}]
    await _lifecycle(platform, activity, {"attribute": "marketing"})


async def test_referral_fixed_path(platform: Platform) -> None:
    p = await prizes(platform, 3)
    activity = await create(platform, referral_body(p, "fixed"))
    rule = activity["config"]["rules"][0]
    assert rule["prize_id"] == p[0] and rule["tiers"] == [] and rule["threshold"] is None
    await _lifecycle(platform, activity, {"prize_limits": [{"prize_id": p[2], "max_per_user": 1}]})


async def test_team_path(platform: Platform) -> None:
    p = await prizes(platform, 2)
    activity = await create(platform, team_body(p))
    assert activity["attribute"] == "assist" and activity["issuance_form"] == "manual"
    assert activity["config"] == {
        "form": "assist",
        "helpers_needed": 3,
        "initiation_limit": 2,
        "assist_limit": None,
        "initiator_prize_id": p[1],
        "helper_rewards": [{"id": "h1", "segment_id": None, "prize_id": p[0]}],
    }
    await _lifecycle(platform, activity, {"helpers_needed": 5, "assist_limit": 3})


async def test_non_standard_path_needs_only_a_name(platform: Platform) -> None:
    minimal = await create(platform, {"kind": "non_standard", "name": {"en": "VIP"}})
    assert minimal["config"] == {} and minimal["starts_at"] is None
    assert minimal["review_required"] is False
    activity = await create(platform, non_standard_body())
    assert activity["cost_type"] == "daily_operations" and activity["review_required"] is True
    await _lifecycle(platform, activity, {"review_required": False})


async def test_codes_are_unique_and_sequence_numbers_count_per_tenant(platform: Platform) -> None:
    made = [await create(platform, non_standard_body()) for _ in range(5)]
    other = await create(platform, non_standard_body(), tenant="tenant-b")
    assert len({a["activity_code"] for a in made}) == 5
    assert len({a["business_code"] for a in made}) == 5
    assert [a["seq"] for a in made] == [1, 2, 3, 4, 5]
    assert other["seq"] == 1


async def test_published_before_start_is_running_and_ends_by_the_clock(platform: Platform) -> None:
    p = await prizes(platform, 2)
    body = basic_body(p, starts_at="2026-12-01T00:00:00+00:00", ends_at="2026-12-10T00:00:00+00:00")
    activity = await create(platform, body)
    published = await act(platform, activity, "publish")
    assert published.json()["status"] == "running"
    from datetime import UTC, datetime

    platform.clock.set(datetime(2026, 12, 10, tzinfo=UTC))
    got = await platform.activity.get(
        f"/v1/activities/{activity['id']}", headers=platform.operator()
    )
    assert got.json()["status"] == "ended" and got.json()["allowed_operations"] == ["view"]


async def test_creation_with_idempotency_key(platform: Platform) -> None:
    p = await prizes(platform, 2)
    headers = {**platform.operator(), "Idempotency-Key": "console-42"}
    first = await platform.activity.post("/v1/activities", json=basic_body(p), headers=headers)
    again = await platform.activity.post("/v1/activities", json=basic_body(p), headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    other = await platform.activity.post(
        "/v1/activities", json=basic_body(p, remarks="changed"), headers=headers
    )
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    elsewhere = await platform.activity.post(
        "/v1/activities",
        json=basic_body(await prizes(platform, 2, tenant="tenant-b")),
        headers={**platform.operator("tenant-b"), "Idempotency-Key": "console-42"},
    )
    assert elsewhere.status_code == 201 and elsewhere.json()["id"] != first.json()["id"]
    listed = await platform.activity.get("/v1/activities", headers=platform.operator())
    assert len(listed.json()["items"]) == 1
