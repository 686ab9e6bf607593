"""Team limits and refusals (SPEC §1.8), decided by the database even under concurrency."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

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


async def test_one_forming_team_at_a_time_and_the_initiation_limit(platform: Platform) -> None:
    (p_init,) = await prizes(platform, 1)
    act = await team_activity(platform, p_init, initiation_limit=2)
    first = await started(platform, act["id"], "ini")
    busy = await start(platform, act["id"], "ini")
    assert busy.status_code == 409
    assert busy.json()["code"] == "team_forming_exists"
    assert busy.json()["team_id"] == first["id"]
    for helper in ("a", "b"):
        assert (await assist(platform, first["id"], helper)).status_code == 201
    second = await started(platform, act["id"], "ini")
    for helper in ("a", "b"):
        assert (await assist(platform, second["id"], helper)).status_code == 201
    third = await start(platform, act["id"], "ini")
    assert third.status_code == 409
    assert (third.json()["code"], third.json()["limit"]) == ("initiation_limit_reached", 2)
    # another initiator is not affected
    assert (await start(platform, act["id"], "other")).status_code == 201


async def test_retried_start_with_the_same_key_returns_the_same_team(platform: Platform) -> None:
    (p_init,) = await prizes(platform, 1)
    act = await team_activity(platform, p_init, initiation_limit=1)
    one = await start(platform, act["id"], "ini", **{"Idempotency-Key": "start-1"})
    two = await start(platform, act["id"], "ini", **{"Idempotency-Key": "start-1"})
    assert (one.status_code, two.status_code) == (201, 201)
    assert one.json()["id"] == two.json()["id"] and "Idempotent-Replayed" in two.headers
    other = await team_activity(platform, p_init)
    reused = await start(platform, other["id"], "ini", **{"Idempotency-Key": "start-1"})
    assert (reused.status_code, reused.json()["code"]) == (422, "idempotency_key_reused")


async def test_assist_refusals(platform: Platform) -> None:
    p_init, p_help = await prizes(platform, 2)
    act = await team_activity(
        platform,
        p_init,
        [{"segment_id": None, "prize_id": p_help}],
        helpers_needed=3,
        assist_limit=2,
    )
    t1 = await started(platform, act["id"], "i1")
    t2 = await started(platform, act["id"], "i2")
    t3 = await started(platform, act["id"], "i3")

    own = await assist(platform, t1["id"], "i1")
    assert (own.status_code, own.json()["code"]) == (409, "own_team")
    assert (await assist(platform, t1["id"], "h")).status_code == 201
    twice = await assist(platform, t1["id"], "h")
    assert (twice.status_code, twice.json()["code"]) == (409, "already_assisted")
    # a retry carrying the same Idempotency-Key is answered, not refused, and counts once
    keyed = await assist(platform, t2["id"], "h", **{"Idempotency-Key": "k-1"})
    retried = await assist(platform, t2["id"], "h", **{"Idempotency-Key": "k-1"})
    assert (keyed.status_code, retried.status_code) == (201, 201)
    assert retried.json()["team"]["size"] == "1/3"
    limited = await assist(platform, t3["id"], "h")
    assert (limited.status_code, limited.json()["code"]) == (409, "assist_limit_reached")
    assert limited.json()["limit"] == 2
    missing = await assist(platform, "00000000-0000-0000-0000-000000000000", "h")
    assert (missing.status_code, missing.json()["code"]) == (404, "team_not_found")
    # refused assists left nothing behind: two helper rewards only
    await platform.drain()
    assert await records(platform, act["activity_code"]) == [
        ("h", p_help, "issued"),
        ("h", p_help, "issued"),
    ]


async def test_concurrent_assists_on_the_last_slot(platform: Platform) -> None:
    p_init, p_help = await prizes(platform, 2)
    act = await team_activity(
        platform, p_init, [{"segment_id": None, "prize_id": p_help}], helpers_needed=3
    )
    team = await started(platform, act["id"], "ini")
    assert (await assist(platform, team["id"], "h0")).status_code == 201
    responses = await asyncio.gather(*(assist(platform, team["id"], f"h{i}") for i in range(1, 9)))
    codes = sorted(r.status_code for r in responses)
    assert codes == [201, 201] + [409] * 6
    assert {r.json()["code"] for r in responses if r.status_code == 409} == {"team_full"}
    detail = await platform.activity.get(f"/v1/teams/{team['id']}", headers=platform.operator())
    assert detail.json()["size"] == "3/3"
    assert len(detail.json()["members"]) == 3
    await platform.drain()
    got = await records(platform, act["activity_code"])
    assert [r for r in got if r[0] == "ini"] == [("ini", p_init, "issued")]
    assert len(got) == 4  # the initiator once and the three helpers who got in


async def test_concurrent_assists_respect_the_assist_limit(platform: Platform) -> None:
    (p_init,) = await prizes(platform, 1)
    act = await team_activity(platform, p_init, helpers_needed=2, assist_limit=1)
    teams = [await started(platform, act["id"], f"i{i}") for i in range(6)]
    responses = await asyncio.gather(*(assist(platform, t["id"], "busy") for t in teams))
    assert sorted(r.status_code for r in responses) == [201] + [409] * 5
    assert {r.json()["code"] for r in responses if r.status_code == 409} == {"assist_limit_reached"}


async def test_concurrent_starts_make_one_forming_team(platform: Platform) -> None:
    (p_init,) = await prizes(platform, 1)
    act = await team_activity(platform, p_init)
    responses = await asyncio.gather(*(start(platform, act["id"], "ini") for _ in range(5)))
    assert sorted(r.status_code for r in responses) == [201] + [409] * 4
    listed = await platform.activity.get(
        f"/v1/activities/{act['id']}/teams", headers=platform.operator()
    )
    assert listed.json()["stats"]["all"] == 1


async def test_unfilled_teams_fail_when_the_window_ends(platform: Platform) -> None:
    (p_init,) = await prizes(platform, 1)
    act = await team_activity(platform, p_init, helpers_needed=2)
    forming = await started(platform, act["id"], "a")
    done = await started(platform, act["id"], "b")
    for helper in ("x", "y"):
        assert (await assist(platform, done["id"], helper)).status_code == 201
    assert (await assist(platform, forming["id"], "x")).status_code == 201
    url = f"/v1/activities/{act['id']}/teams"
    running = await platform.activity.get(url, headers=platform.operator())
    assert running.json()["stats"] == {"forming": 1, "succeeded": 1, "failed": 0, "all": 2}

    platform.clock.set(datetime(2027, 1, 1, tzinfo=UTC))  # ends_at, exclusive
    ended = await platform.activity.get(url, headers=platform.operator())
    assert ended.json()["stats"] == {"forming": 0, "succeeded": 1, "failed": 1, "all": 2}
    failed = await platform.activity.get(
        url, params={"status": "failed"}, headers=platform.operator()
    )
    assert [t["id"] for t in failed.json()["items"]] == [forming["id"]]
    assert failed.json()["items"][0]["status"] == "failed"
    assert failed.json()["items"][0]["completed_at"] is None
    none_forming = await platform.activity.get(
        url, params={"status": "forming"}, headers=platform.operator()
    )
    assert none_forming.json()["items"] == []
    late = await assist(platform, forming["id"], "z")
    assert (late.status_code, late.json()["code"]) == (409, "team_not_forming")
    again = await start(platform, act["id"], "c")
    assert (again.status_code, again.json()["code"]) == (409, "activity_not_running")
    await platform.drain()
    async with platform.db("activity").session() as session:
        initiator_grants = await session.scalar(
            select(func.count()).select_from(Grant).where(Grant.rule_id == "initiator")
        )
    assert initiator_grants == 1


async def test_closing_the_activity_fails_forming_teams(platform: Platform) -> None:
    (p_init,) = await prizes(platform, 1)
    act = await team_activity(platform, p_init)
    team = await started(platform, act["id"], "a")
    closed = await platform.activity.post(
        f"/v1/activities/{act['id']}/close", headers=platform.operator()
    )
    assert closed.status_code == 200, closed.text
    detail = await platform.activity.get(f"/v1/teams/{team['id']}", headers=platform.operator())
    assert detail.json()["status"] == "failed"
    late = await assist(platform, team["id"], "z")
    assert late.json()["code"] == "team_not_forming"


async def test_activity_must_be_a_running_team_activity(platform: Platform) -> None:
    (p_init,) = await prizes(platform, 1)
    draft = await team_activity(platform, p_init, publish=False)
    refused = await start(platform, draft["id"], "ini")
    assert (refused.status_code, refused.json()["code"]) == (409, "activity_not_running")
    future = await team_activity(
        platform,
        p_init,
        starts_at="2026-12-01T00:00:00+00:00",
        ends_at="2027-01-01T00:00:00+00:00",
    )
    early = await start(platform, future["id"], "ini")
    assert (early.status_code, early.json()["code"]) == (409, "activity_not_started")
    basic = await platform.activity.post(
        "/v1/activities",
        json={
            "kind": "non_standard",
            "name": {"en": "Offline"},
        },
        headers=platform.operator(),
    )
    not_team = await start(platform, basic.json()["id"], "ini")
    assert (not_team.status_code, not_team.json()["code"]) == (409, "activity_not_team")


async def test_only_the_target_segment_may_initiate(platform: Platform) -> None:
    (p_init,) = await prizes(platform, 1)
    platform.clock.advance(timedelta(minutes=1))
    seg = await members(platform, "Invited", ["ini"])
    act = await team_activity(platform, p_init, segment_id=seg, segment_refresh="5m")
    early = await start(platform, act["id"], "ini")  # not in the snapshot yet
    assert (early.status_code, early.json()["code"]) == (403, "not_in_segment")
    next_snapshot(platform)
    assert (await start(platform, act["id"], "ini")).status_code == 201
    outsider = await start(platform, act["id"], "outsider")
    assert (outsider.status_code, outsider.json()["code"]) == (403, "not_in_segment")
    # helpers need not be in the target segment (SPEC §1.2: initiators only)
    team = (
        await platform.activity.get(
            f"/v1/activities/{act['id']}/teams", headers=platform.user("ini")
        )
    ).json()["items"][0]
    assert (await assist(platform, team["id"], "outsider")).status_code == 201
