"""The full activity list with filters and pages, the app user's list, permissions and
tenant isolation (SPEC §1.1, §4)."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.service.activity_config.helpers import (
    act,
    basic_body,
    create,
    non_standard_body,
    patch,
    prizes,
    referral_body,
    segment,
    team_body,
)
from tests.service.harness import Platform

DEC = {"starts_at": "2026-12-01T00:00:00+00:00", "ends_at": "2026-12-31T00:00:00+00:00"}


async def _list(platform: Platform, **params: str) -> list[dict]:
    response = await platform.activity.get(
        "/v1/activities", params=params, headers=platform.operator()
    )
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def test_full_list_filters(platform: Platform) -> None:
    p = await prizes(platform, 4)
    basic = await create(platform, basic_body(p, name={"en": "Deposit bonus"}))
    referral = await create(platform, referral_body(p, name={"zh-Hans": "邀请好友"}))
    team = await create(platform, team_body(p, **DEC))
    manual = await create(platform, non_standard_body(name={"en": "VIP 100%_off"}))
    await act(platform, basic, "publish")
    await act(platform, team, "publish")
    await act(platform, manual, "close")

    everything = await _list(platform)
    assert [a["id"] for a in everything] == [manual["id"], team["id"], referral["id"], basic["id"]]
    first = everything[-1]
    for field in (
        "seq",
        "activity_code",
        "business_code",
        "name",
        "kind",
        "attribute",
        "status",
        "segment_refresh",
        "starts_at",
        "ends_at",
        "remarks",
        "cost_type",
        "review_required",
        "submitter",
        "created_at",
        "updated_at",
    ):
        assert field in first

    assert [a["id"] for a in await _list(platform, kind="referral")] == [referral["id"]]
    assert {a["id"] for a in await _list(platform, status="running")} == {basic["id"], team["id"]}
    assert [a["id"] for a in await _list(platform, status="draft")] == [referral["id"]]
    assert [a["id"] for a in await _list(platform, status="closed")] == [manual["id"]]
    assert [a["id"] for a in await _list(platform, code=basic["activity_code"])] == [basic["id"]]
    assert [a["id"] for a in await _list(platform, code=team["business_code"].lower())] == [
        team["id"]
    ]
    assert [a["id"] for a in await _list(platform, name="deposit")] == [basic["id"]]
    assert [a["id"] for a in await _list(platform, name="邀请")] == [referral["id"]]
    # LIKE wildcards in the search are taken literally.
    assert [a["id"] for a in await _list(platform, name="100%_")] == [manual["id"]]
    assert await _list(platform, name="%%") == []
    december = await _list(
        platform, window_from="2026-12-05T00:00:00+00:00", window_to="2026-12-06T00:00:00+00:00"
    )
    assert {a["id"] for a in december} == {basic["id"], referral["id"], team["id"]}
    later = await _list(platform, window_from="2026-12-31T00:00:00+00:00")
    assert {a["id"] for a in later} == {basic["id"], referral["id"]}

    platform.clock.set(datetime(2027, 1, 1, tzinfo=UTC))
    assert [a["id"] for a in await _list(platform, status="ended")] == [team["id"], basic["id"]]
    bad = await platform.activity.get(
        "/v1/activities",
        params={"window_from": "2027-01-02T00:00:00Z", "window_to": "2027-01-01T00:00:00Z"},
        headers=platform.operator(),
    )
    assert bad.status_code == 422 and bad.json()["code"] == "window_invalid"


async def test_list_pages(platform: Platform) -> None:
    made = [await create(platform, non_standard_body()) for _ in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = await platform.activity.get(
            "/v1/activities", params=params, headers=platform.operator()
        )
        body = page.json()
        seen.extend(a["id"] for a in body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == [a["id"] for a in reversed(made)]


async def test_my_activities_in_my_language(platform: Platform) -> None:
    p = await prizes(platform, 4)
    names = {"zh-Hans": "入金有礼", "zh-Hant": "入金有禮", "en": "Deposit bonus"}
    running = await create(platform, basic_body(p, name=names))
    await act(platform, running, "publish")
    upcoming = await create(platform, referral_body(p, name={"en": "Invite"}, **DEC))
    await act(platform, upcoming, "publish")
    await create(platform, basic_body(p))  # a draft
    manual = await create(platform, non_standard_body())
    await act(platform, manual, "publish")

    seg = await segment(platform)
    members_only = await create(
        platform, basic_body(p, segment_id=seg["id"], segment_refresh="5m", name={"en": "VIP"})
    )
    await act(platform, members_only, "publish")
    team_for_vips = await create(platform, team_body(p, segment_id=seg["id"], segment_refresh="5m"))
    await act(platform, team_for_vips, "publish")

    async def mine(user: str, language: str | None = None) -> list[dict]:
        headers = platform.user(user)
        if language:
            headers["Accept-Language"] = language
        response = await platform.activity.get("/v1/me/activities", headers=headers)
        assert response.status_code == 200, response.text
        return response.json()["items"]

    items = await mine("u-1", "zh-HK,zh;q=0.9")
    by_id = {a["id"]: a for a in items}
    assert set(by_id) == {running["id"], upcoming["id"], team_for_vips["id"]}
    assert by_id[running["id"]]["name"] == "入金有禮"
    assert by_id[running["id"]]["language"] == "zh-Hant" and by_id[running["id"]]["started"]
    assert by_id[upcoming["id"]]["name"] == "Invite" and not by_id[upcoming["id"]]["started"]
    # A name missing in the wanted language falls back, and says which language it is in.
    assert by_id[upcoming["id"]]["language"] == "en"
    assert "remarks" not in by_id[running["id"]]
    assert (await mine("u-1", "zh-CN"))[0]["language"] == "zh-Hans"
    plain = await platform.activity.get("/v1/me/activities", headers=platform.user("u-1"))
    served = {a["language"] for a in plain.json()["items"]}
    assert "en" in served
    assert plain.headers["Content-Language"] == ", ".join(
        lang for lang in ("zh-Hans", "zh-Hant", "en") if lang in served
    )
    assert {a["name"] for a in plain.json()["items"]} >= {"Deposit bonus", "Invite"}

    await platform.activity.put(
        f"/v1/segments/{seg['id']}/members", json=["u-vip"], headers=platform.operator()
    )
    platform.clock.set(datetime(2026, 11, 23, 2, 5, tzinfo=UTC))
    vip = {a["id"] for a in await mine("u-vip")}
    assert members_only["id"] in vip and members_only["id"] not in {
        a["id"] for a in await mine("u-1")
    }

    operator = await platform.activity.get("/v1/me/activities", headers=platform.operator())
    assert operator.status_code == 403


async def test_permissions(platform: Platform) -> None:
    reader = platform.operator(permissions=["ActivityCenterRead"])
    rights_only = platform.operator(permissions=["RightsSystemFull"])
    activity = await create(platform, non_standard_body())
    path = f"/v1/activities/{activity['id']}"

    assert (await platform.activity.get(path, headers=reader)).status_code == 200
    assert (await platform.activity.get("/v1/activities", headers=reader)).status_code == 200
    assert (await platform.activity.get(f"{path}/audit", headers=reader)).status_code == 200
    denied = [
        await platform.activity.post("/v1/activities", json=non_standard_body(), headers=reader),
        await platform.activity.patch(
            path, json={"remarks": "x"}, headers={**reader, "If-Match": '"1"'}
        ),
        await platform.activity.post(f"{path}/publish", headers=reader),
        await platform.activity.post(f"{path}/close", headers=reader),
        await platform.activity.post("/v1/segments", json={"name": "s"}, headers=reader),
        await platform.activity.get(path, headers=rights_only),
        await platform.activity.get(path, headers=platform.user("u-1")),
        await platform.activity.post(
            "/v1/activities", json=non_standard_body(), headers=platform.service()
        ),
    ]
    assert [r.status_code for r in denied] == [403] * len(denied)
    assert all(r.json()["code"] == "forbidden" for r in denied)
    assert (await platform.activity.get(path)).status_code == 401


async def test_tenants_are_isolated(platform: Platform) -> None:
    p = await prizes(platform, 2)
    mine = await create(platform, basic_body(p))
    seg = await segment(platform)
    other = platform.operator("tenant-b")
    path = f"/v1/activities/{mine['id']}"

    assert (await platform.activity.get(path, headers=other)).status_code == 404
    assert (
        await platform.activity.get(
            f"/v1/activities/by-code/{mine['activity_code']}", headers=other
        )
    ).status_code == 404
    assert (await platform.activity.get(f"{path}/audit", headers=other)).status_code == 404
    assert (await patch(platform, mine, {"remarks": "x"}, 1, tenant="tenant-b")).status_code == 404
    assert (await act(platform, mine, "publish", tenant="tenant-b")).status_code == 404
    assert (await act(platform, mine, "close", tenant="tenant-b")).status_code == 404
    listed = await platform.activity.get("/v1/activities", headers=other)
    assert listed.json()["items"] == []

    # Tenant b can reference neither tenant a's segment nor its prizes.
    pb = await prizes(platform, 2, tenant="tenant-b")
    problem = await create(
        platform,
        basic_body(pb, segment_id=seg["id"], segment_refresh="5m"),
        tenant="tenant-b",
        expect=422,
    )
    assert problem["code"] == "segment_not_found"
    problem = await create(platform, basic_body(p), tenant="tenant-b", expect=422)
    assert problem["code"] == "prize_not_found"
    for request in (
        platform.activity.get(f"/v1/segments/{seg['id']}", headers=other),
        platform.activity.put(f"/v1/segments/{seg['id']}/members", json=["x"], headers=other),
        platform.activity.get(f"/v1/segments/{seg['id']}/members/x", headers=other),
    ):
        response = await request
        assert response.status_code == 404 and response.json()["code"] == "segment_not_found"
