"""Node completions arriving from activity_service's business events (real jobs)."""

from __future__ import annotations

from tests.service.flows import registered_event
from tests.service.harness import Platform
from tests.service.referral.steps import invite_code, op_change


async def test_registration_and_account_opening_events_bind_and_freeze(platform: Platform) -> None:
    code = await invite_code(platform, "u-a")
    for event in (
        registered_event("u-b", "evt-reg-b", code),
        {
            "event_id": "evt-open-b",
            "type": "account.opened",
            "user_id": "u-b",
            "app_id": "broker-app",
            "occurred_at": "2026-11-23T01:45:00+00:00",
        },
    ):
        posted = await platform.activity.post("/v1/events", json=event, headers=platform.service())
        assert posted.status_code == 202, posted.text
    await platform.drain()

    body = (await platform.referral.get("/v1/bindings/u-b", headers=platform.operator())).json()
    nodes = {n["node"]: n for n in body["nodes"]}
    assert nodes["registration"]["binding"]["inviter_id"] == "u-a"
    assert nodes["registration"]["completed_at"] is not None
    assert nodes["account_opening"]["completed_at"].startswith("2026-11-23T01:45")
    assert nodes["account_opening"]["frozen"] is True
    assert nodes["account_opening"]["effective_inviter_id"] == "u-a"

    frozen = await op_change(platform, "u-b", "account_opening", "u-c")
    assert frozen.status_code == 409 and frozen.json()["code"] == "node_completed"
    # The deposit node is still open.
    assert (await op_change(platform, "u-b", "deposit", "u-c")).status_code == 200
