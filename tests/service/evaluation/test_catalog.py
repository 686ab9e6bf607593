"""The in-memory catalog of published activities follows every change at once: a campaign
published, closed or edited between two events is seen by the next event's evaluation."""

from __future__ import annotations

from sqlalchemy import text

from activity_service.evaluation.catalog import CATALOGS
from tests.service.evaluation.steps import activity, event, grants, post, prizes, table
from tests.service.harness import Platform


async def test_publish_and_close_are_seen_by_the_next_event(platform: Platform) -> None:
    (prize,) = await prizes(platform, 1)
    first = await activity(
        platform, {"kind": "basic", "rules": [{"id": "reg", "task": "register", "prize_id": prize}]}
    )
    await post(platform, event("user.registered", "u1", "2026-12-02T10:00:00+08:00"))
    await platform.drain()
    assert table(await grants(platform, first["id"])) == [("u1", "reg", prize)]

    closed = await platform.activity.post(
        f"/v1/activities/{first['id']}/close", headers=platform.operator()
    )
    assert closed.status_code == 200, closed.text
    second = await activity(
        platform, {"kind": "basic", "rules": [{"id": "reg", "task": "register", "prize_id": prize}]}
    )
    await post(platform, event("user.registered", "u2", "2026-12-02T11:00:00+08:00"))
    await platform.drain()
    assert table(await grants(platform, first["id"])) == [("u1", "reg", prize)]
    assert table(await grants(platform, second["id"])) == [("u2", "reg", prize)]


async def test_a_change_made_outside_the_api_is_seen_as_well(platform: Platform) -> None:
    """The version moves by a database trigger, so even an operator's SQL is seen."""
    (prize,) = await prizes(platform, 1)
    act = await activity(
        platform, {"kind": "basic", "rules": [{"id": "reg", "task": "register", "prize_id": prize}]}
    )
    await post(platform, event("user.registered", "u1", "2026-12-02T10:00:00+08:00"))
    await platform.drain()
    async with platform.db("activity").sessionmaker() as session:
        await session.execute(
            text("UPDATE activities SET state = 'closed' WHERE id = :id"), {"id": act["id"]}
        )
        await session.commit()
    await post(platform, event("user.registered", "u2", "2026-12-02T11:00:00+08:00"))
    await platform.drain()
    assert table(await grants(platform, act["id"])) == [("u1", "reg", prize)]


async def test_events_of_other_types_read_no_campaign(platform: Platform) -> None:
    (prize,) = await prizes(platform, 1)
    act = await activity(
        platform,
        {"kind": "basic", "rules": [{"id": "open", "task": "open_account", "prize_id": prize}]},
    )
    await post(
        platform,
        event("user.registered", "u1", "2026-12-02T10:00:00+08:00"),
        event("account.opened", "u1", "2026-12-02T11:00:00+08:00"),
    )
    await platform.drain()
    assert table(await grants(platform, act["id"])) == [("u1", "open", prize)]
    async with platform.db("activity").sessionmaker() as session:
        catalog = await CATALOGS.get(session, "tenant-a")
    assert [str(a.id) for a in catalog.triggered_by("account.opened")] == [act["id"]]
    assert catalog.triggered_by("user.registered") == ()
