"""A node's inviter is frozen from the moment its completing event is acknowledged (202),
not when a job gets to it: with no job run at all, the referral service asks the activity
service's event log, and changes nothing when it cannot know."""

from __future__ import annotations

from typing import Any

from tests.service.harness import Platform
from tests.service.referral.steps import op_bind, op_change


async def post_event(platform: Platform, tenant: str = "tenant-a", **event: Any) -> None:
    body = {"app_id": "broker-app", "occurred_at": "2026-11-23T02:00:00Z", **event}
    response = await platform.activity.post(
        "/v1/events", json=body, headers=platform.service(tenant)
    )
    assert response.status_code == 202, response.text


async def test_an_acknowledged_account_opening_freezes_its_inviter_before_any_job(
    platform: Platform,
) -> None:
    assert (await op_change(platform, "u-b", "account_opening", "u-a")).status_code == 200
    await post_event(platform, event_id="open-b", type="account.opened", user_id="u-b")
    # No relay, no worker: only the stored event knows.
    changed = await op_change(platform, "u-b", "account_opening", "u-c")
    assert changed.status_code == 409 and changed.json()["code"] == "node_completed"
    assert changed.json()["completed_at"].startswith("2026-11-23T02:00")
    unbound_node = await op_bind(platform, "u-d", "u-a", "account_opening")
    assert unbound_node.status_code == 201  # another invitee is not frozen
    await post_event(platform, event_id="open-d2", type="account.opened", user_id="u-e")
    assert (await op_bind(platform, "u-e", "u-a", "account_opening")).json()[
        "code"
    ] == "node_completed"
    # The deposit node of u-b is still open, and a registration event does not close it.
    assert (await op_change(platform, "u-b", "deposit", "u-c")).status_code == 200
    body = (await platform.referral.get("/v1/bindings/u-b", headers=platform.operator())).json()
    ao = next(n for n in body["nodes"] if n["node"] == "account_opening")
    assert ao["binding"]["inviter_id"] == "u-a"


async def test_the_first_deposit_or_stock_transfer_freezes_the_deposit_inviter(
    platform: Platform,
) -> None:
    await post_event(
        platform,
        event_id="dep-b",
        type="cash.deposited",
        user_id="u-b",
        amount="100",
        currency="HKD",
    )
    await post_event(
        platform,
        event_id="stock-c",
        type="stock.transferred_in",
        user_id="u-c",
        amount="100",
        currency="HKD",
    )
    await post_event(
        platform,
        event_id="out-d",
        type="cash.withdrawn",
        user_id="u-d",
        amount="100",
        currency="HKD",
    )
    for user in ("u-b", "u-c"):
        refused = await op_change(platform, user, "deposit", "u-a")
        assert refused.status_code == 409 and refused.json()["code"] == "node_completed", user
    assert (await op_change(platform, "u-d", "deposit", "u-a")).status_code == 200


async def test_another_tenants_event_freezes_nothing_here(platform: Platform) -> None:
    await post_event(
        platform, tenant="tenant-b", event_id="open-b", type="account.opened", user_id="u-b"
    )
    assert (await op_change(platform, "u-b", "account_opening", "u-a")).status_code == 200


async def test_nothing_changes_when_the_activity_service_cannot_answer(
    platform: Platform,
) -> None:
    settings = platform.apps["referral"].state.settings
    reachable = settings.activity_url
    settings.activity_url = "http://127.0.0.1:9"  # nothing listens there
    try:
        changed = await op_change(platform, "u-b", "account_opening", "u-a")
        bound = await op_bind(platform, "u-b", "u-a", "deposit")
    finally:
        settings.activity_url = reachable
    for response in (changed, bound):
        assert response.status_code == 503 and response.json()["code"] == "completion_unknown"
    body = (await platform.referral.get("/v1/bindings/u-b", headers=platform.operator())).json()
    assert all(n["binding"] is None for n in body["nodes"]) and body["history"] == []
    # Registration binds do not depend on it: that node's freeze is the invite-code grace.
    settings.activity_url = "http://127.0.0.1:9"
    try:
        assert (await op_bind(platform, "u-b", "u-a")).status_code == 201
    finally:
        settings.activity_url = reachable


async def test_node_completions_read_from_the_event_log(platform: Platform) -> None:
    await post_event(
        platform,
        event_id="reg-b",
        type="user.registered",
        user_id="u-b",
        occurred_at="2026-11-20T01:00:00Z",
    )
    await post_event(platform, event_id="open-b", type="account.opened", user_id="u-b")
    for event_id, at in (("dep-2", "2026-11-23T05:00:00Z"), ("dep-1", "2026-11-22T05:00:00Z")):
        await post_event(
            platform,
            event_id=event_id,
            type="cash.deposited",
            user_id="u-b",
            amount="5",
            currency="HKD",
            occurred_at=at,
        )
    response = await platform.activity.get(
        "/v1/users/u-b/node-completions", headers=platform.service()
    )
    assert response.status_code == 200, response.text
    nodes = {n["node"]: (n["completed_at"][:10], n["event_id"]) for n in response.json()["nodes"]}
    assert nodes == {
        "registration": ("2026-11-20", "reg-b"),
        "account_opening": ("2026-11-23", "open-b"),
        "deposit": ("2026-11-22", "dep-1"),
    }
    other = await platform.activity.get(
        "/v1/users/u-b/node-completions", headers=platform.service("tenant-b")
    )
    assert other.json()["nodes"] == []
    by_user = await platform.activity.get(
        "/v1/users/u-b/node-completions", headers=platform.user("u-b")
    )
    assert by_user.status_code == 403
