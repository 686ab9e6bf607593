"""A draft can be deleted (it never reached a user); anything published answers why not."""

from __future__ import annotations

from datetime import timedelta

from tests.service.activity_config.helpers import act, basic_body, create, prizes
from tests.service.harness import Platform


async def delete(platform: Platform, activity_id: str, **headers: str) -> object:
    return await platform.activity.delete(
        f"/v1/activities/{activity_id}", headers={**platform.operator(), **headers}
    )


async def test_a_draft_is_deleted_and_its_audit_trail_kept(platform: Platform) -> None:
    draft = await create(platform, basic_body(await prizes(platform, 2)))
    stale = await platform.activity.delete(
        f"/v1/activities/{draft['id']}", headers={**platform.operator(), "If-Match": '"7"'}
    )
    assert stale.status_code == 412 and stale.json()["code"] == "version_mismatch"
    platform.clock.advance(timedelta(seconds=1))  # the trail is ordered by the clock's time
    deleted = await platform.activity.delete(
        f"/v1/activities/{draft['id']}", headers={**platform.operator(), "If-Match": '"1"'}
    )
    assert deleted.status_code == 204, deleted.text
    gone = await platform.activity.get(f"/v1/activities/{draft['id']}", headers=platform.operator())
    assert gone.status_code == 404
    again = await platform.activity.delete(
        f"/v1/activities/{draft['id']}", headers=platform.operator()
    )
    assert again.status_code == 404 and again.json()["code"] == "activity_not_found"
    trail = await platform.activity.get(
        f"/v1/activities/{draft['id']}/audit", headers=platform.operator()
    )
    assert trail.status_code == 200
    assert [e["action"] for e in trail.json()["items"]][0] == "deleted"


async def test_published_and_closed_activities_are_not_deleted(platform: Platform) -> None:
    p = await prizes(platform, 2)
    running = await create(platform, basic_body(p))
    assert (await act(platform, running, "publish")).status_code == 200
    closed = await create(platform, basic_body(p))
    assert (await act(platform, closed, "close")).status_code == 200
    for activity in (running, closed):
        refused = await platform.activity.delete(
            f"/v1/activities/{activity['id']}", headers=platform.operator()
        )
        assert refused.status_code == 409, refused.text
        assert refused.json()["code"] == "activity_not_deletable"
        kept = await platform.activity.get(
            f"/v1/activities/{activity['id']}", headers=platform.operator()
        )
        assert kept.status_code == 200


async def test_deleting_needs_write_permission_in_the_tenant(platform: Platform) -> None:
    draft = await create(platform, basic_body(await prizes(platform, 2)))
    url = f"/v1/activities/{draft['id']}"
    read_only = await platform.activity.delete(
        url, headers=platform.operator(permissions=["ActivityCenterRead"])
    )
    assert read_only.status_code == 403
    elsewhere = await platform.activity.delete(url, headers=platform.operator("tenant-b"))
    assert elsewhere.status_code == 404
    as_service = await platform.activity.delete(url, headers=platform.service())
    assert as_service.status_code == 403
    assert (await platform.activity.get(url, headers=platform.operator())).status_code == 200
