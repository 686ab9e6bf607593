"""Who sees which teams (SPEC §4): operators of the tenant, the initiator and the helpers."""

from __future__ import annotations

from datetime import timedelta

from tests.service.harness import Platform
from tests.service.teams.steps import assist, prizes, started, team_activity


async def test_team_visibility_and_lists(platform: Platform) -> None:
    (p_init,) = await prizes(platform, 1)
    act = await team_activity(platform, p_init, helpers_needed=3)
    mine = await started(platform, act["id"], "ini")
    platform.clock.advance(timedelta(seconds=1))  # distinct creation times: a stable order
    theirs = await started(platform, act["id"], "other")
    assert (await assist(platform, mine["id"], "helper")).status_code == 201

    for who, code in (("ini", 200), ("helper", 200), ("stranger", 404), ("other", 404)):
        url = f"/v1/teams/{mine['id']}"
        response = await platform.activity.get(url, headers=platform.user(who))
        assert response.status_code == code, (who, response.text)
    assert (
        await platform.activity.get(f"/v1/teams/{mine['id']}", headers=platform.user("stranger"))
    ).json()["code"] == "team_not_found"
    detail = await platform.activity.get(f"/v1/teams/{mine['id']}", headers=platform.operator())
    assert [m["helper_id"] for m in detail.json()["members"]] == ["helper"]

    url = f"/v1/activities/{act['id']}/teams"
    operator = await platform.activity.get(url, headers=platform.operator())
    assert {t["id"] for t in operator.json()["items"]} == {mine["id"], theirs["id"]}
    assert operator.json()["stats"] == {"forming": 2, "succeeded": 0, "failed": 0, "all": 2}
    user = await platform.activity.get(url, headers=platform.user("ini"))
    assert [t["id"] for t in user.json()["items"]] == [mine["id"]]
    assert user.json()["stats"]["all"] == 1
    read_only = await platform.activity.get(
        url, headers=platform.operator(permissions=["ActivityCenterRead"])
    )
    assert read_only.status_code == 200
    rights_only = await platform.activity.get(
        url, headers=platform.operator(permissions=["RightsSystemFull"])
    )
    assert rights_only.status_code == 403
    # operators cannot start or help teams; back ends cannot read them
    assert (
        await platform.activity.post(url, json={}, headers=platform.operator())
    ).status_code == 403
    assert (await platform.activity.get(url, headers=platform.service())).status_code == 403

    # pagination: newest first, one per page
    first = await platform.activity.get(url, params={"limit": 1}, headers=platform.operator())
    second = await platform.activity.get(
        url,
        params={"limit": 1, "cursor": first.json()["next_cursor"]},
        headers=platform.operator(),
    )
    assert [first.json()["items"][0]["id"], second.json()["items"][0]["id"]] == [
        theirs["id"],
        mine["id"],
    ]
    assert second.json()["next_cursor"] is None


async def test_other_tenants_see_nothing(platform: Platform) -> None:
    (p_init,) = await prizes(platform, 1)
    act = await team_activity(platform, p_init)
    team = await started(platform, act["id"], "ini")
    b_team = f"/v1/teams/{team['id']}"
    other = await platform.activity.get(b_team, headers=platform.operator("tenant-b"))
    assert other.status_code == 404
    foreign = await assist(platform, team["id"], "helper", tenant="tenant-b")
    assert (foreign.status_code, foreign.json()["code"]) == (404, "team_not_found")
    listed = await platform.activity.get(
        f"/v1/activities/{act['id']}/teams", headers=platform.operator("tenant-b")
    )
    assert (listed.status_code, listed.json()["code"]) == (404, "activity_not_found")
    started_b = await platform.activity.post(
        f"/v1/activities/{act['id']}/teams", headers=platform.user("ini", "tenant-b")
    )
    assert started_b.status_code == 404
