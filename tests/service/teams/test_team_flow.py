"""Team (assist-to-win) activities at run time (SPEC §1.8): start, assist, success and the
rewards issued through reward_service."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import select

from activity_service.evaluation.models import Grant
from tests.service.harness import Platform
from tests.service.teams.steps import (
    assist,
    members,
    next_snapshot,
    prizes,
    records,
    start,
    started,
    team_activity,
)


async def test_team_fills_and_initiator_and_helpers_are_rewarded(platform: Platform) -> None:
    p_init, p_vip, p_all = await prizes(platform, 3)
    vip = await members(platform, "VIP", ["vip1"])
    act = await team_activity(
        platform,
        p_init,
        [{"segment_id": vip, "prize_id": p_vip}, {"segment_id": None, "prize_id": p_all}],
        segment_refresh="5m",
    )
    next_snapshot(platform)
    team = await started(platform, act["id"], "ini")
    assert team["status"] == "forming"
    assert team["number"].startswith("T-") and len(team["number"]) == 10
    assert team["name"] == "INI's team"
    assert (team["initiator_id"], team["size"], team["members"]) == ("ini", "0/2", [])
    assert team["completed_at"] is None

    first = await assist(platform, team["id"], "vip1")
    assert first.status_code == 201, first.text
    assert first.json()["helper_prize_id"] == p_vip
    assert first.json()["team"]["size"] == "1/2"
    assert first.json()["team_succeeded"] is False

    platform.clock.advance(timedelta(minutes=1))
    second = await assist(platform, team["id"], "h2")
    assert second.status_code == 201, second.text
    body = second.json()
    assert body["helper_prize_id"] == p_all  # not in VIP: the "all users" entry
    assert body["team_succeeded"] is True
    assert body["team"]["status"] == "succeeded"
    assert body["team"]["size"] == "2/2"
    assert body["team"]["completed_at"] == platform.clock.now().isoformat().replace("+00:00", "Z")
    assert [m["helper_id"] for m in body["team"]["members"]] == ["vip1", "h2"]

    # a full team takes nobody else
    third = await assist(platform, team["id"], "h3")
    assert third.status_code == 409
    assert third.json()["code"] == "team_full"
    assert third.headers["content-type"].startswith("application/problem+json")

    await platform.drain()
    assert await records(platform, act["activity_code"]) == sorted(
        [("ini", p_init, "issued"), ("vip1", p_vip, "issued"), ("h2", p_all, "issued")]
    )
    # grant keys are deterministic per (activity, rule, user, team)
    async with platform.db("activity").session() as session:
        keys = set(
            (
                await session.scalars(
                    select(Grant.grant_key).where(Grant.activity_id == uuid.UUID(act["id"]))
                )
            ).all()
        )
    assert f"{act['id']}:initiator:ini:{team['id']}:once" in keys
    # draining again issues nothing more
    await platform.drain()
    assert len(await records(platform, act["activity_code"])) == 3

    # the name follows the reader's language
    zh = await platform.activity.get(
        f"/v1/teams/{team['id']}", headers={**platform.user("ini"), "Accept-Language": "zh-CN"}
    )
    assert zh.json()["name"] == "INI的队伍"

    # unlimited initiation: after success the initiator may start again
    again = await start(platform, act["id"], "ini")
    assert again.status_code == 201, again.text
    assert again.json()["id"] != team["id"]


async def test_helpers_outside_every_reward_segment_earn_nothing(platform: Platform) -> None:
    p_init, p_vip = await prizes(platform, 2)
    platform.clock.advance(timedelta(minutes=1))  # between two 5-minute snapshots
    vip = await members(platform, "VIP", ["vip1"])
    act = await team_activity(
        platform,
        p_init,
        [{"segment_id": vip, "prize_id": p_vip}],
        segment_refresh="5m",
        issuance_form="manual",
    )
    team = await started(platform, act["id"], "ini")
    # vip1 joined the segment less than a refresh ago: not yet a member for eligibility
    early = await assist(platform, team["id"], "vip1")
    assert early.status_code == 201
    assert early.json()["helper_prize_id"] is None
    next_snapshot(platform)
    late = await assist(platform, team["id"], "other")
    assert late.json()["helper_prize_id"] is None
    await platform.drain()
    # manual issuance: the initiator's record waits in Pending
    assert await records(platform, act["activity_code"]) == [("ini", p_init, "pending")]
    explained = await platform.activity.get(
        f"/v1/activities/{act['id']}/explain",
        params={"user_id": "other"},
        headers=platform.operator(),
    )
    assert explained.status_code == 200, explained.text
    assert [(o["rule_id"], o["outcome"]) for o in explained.json()["outcomes"]] == [
        ("helper", "not_in_segment")
    ]


async def test_the_team_name_uses_the_registered_nickname(platform: Platform) -> None:
    (p_init,) = await prizes(platform, 1)
    act = await team_activity(platform, p_init)
    registered = await platform.activity.post(
        "/v1/events",
        json={
            "event_id": "reg-ada",
            "type": "user.registered",
            "user_id": "ada",
            "app_id": "broker-app",
            "occurred_at": "2026-11-20T01:00:00+00:00",
            "nickname": "Ada",
        },
        headers=platform.service(),
    )
    assert registered.status_code in (200, 201, 202), registered.text
    named = await platform.activity.post(
        f"/v1/activities/{act['id']}/teams",
        headers={**platform.user("ada"), "Accept-Language": "zh-Hant"},
    )
    assert named.status_code == 201, named.text
    assert named.json()["name"] == "Ada的隊伍"
    plain = await platform.activity.post(
        f"/v1/activities/{act['id']}/teams", json={}, headers=platform.user("u-77")
    )
    assert plain.json()["name"] == "u-77's team"
