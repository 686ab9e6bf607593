"""The app's invitation views: what I earned by inviting (reward service, which owns the
records) and my invitees with their progress through the nodes (referral service)."""

from __future__ import annotations

from typing import Any

from tests.service.evaluation.steps import activity, event, post, register_invitees
from tests.service.harness import Platform
from tests.service.reward.helpers import coupon_prize


async def totals(platform: Platform, user: str, tenant: str = "tenant-a") -> dict[str, Any]:
    response = await platform.reward.get(
        "/v1/me/invitation-totals", headers=platform.user(user, tenant)
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


async def invitees(platform: Platform, user: str, **params: Any) -> dict[str, Any]:
    response = await platform.referral.get(
        "/v1/me/invitees", params=params, headers=platform.user(user)
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_what_i_earned_by_inviting(platform: Platform) -> None:
    inviter_prize = await coupon_prize(platform, cost_amount="20", cost_currency="HKD")
    invitee_prize = await coupon_prize(platform, cost_amount="5", cost_currency="HKD")
    await activity(
        platform,
        {
            "kind": "referral",
            "attribute": "marketing",
            "reward_type": "fixed",
            "rules": [
                {
                    "id": "reg",
                    "task": "register",
                    "prize_id": inviter_prize["id"],
                    "invitee_prize_id": invitee_prize["id"],
                },
                {"id": "open", "task": "open_account", "prize_id": inviter_prize["id"]},
            ],
        },
    )
    await register_invitees(platform, "inv", ["a", "b", "c"])
    await post(platform, event("account.opened", "a", "2026-12-03T10:00:00+08:00"))
    await platform.drain()

    mine = await totals(platform, "inv")
    assert mine["invitees_rewarded"] == 3
    assert mine["totals"] == [
        {
            "prize_type": "coupon",
            "currency": "HKD",
            "records": 4,
            "issued": 4,
            "amount": "80.000000",
            "issued_amount": "80.000000",
        }
    ]
    # An invitee's own reward is not "earned by inviting"; nobody else's counts either.
    assert (await totals(platform, "a"))["totals"] == []
    assert (await totals(platform, "inv", tenant="tenant-b"))["totals"] == []
    as_operator = await platform.reward.get("/v1/me/invitation-totals", headers=platform.operator())
    assert as_operator.status_code == 403


async def test_my_invitees_with_their_progress(platform: Platform) -> None:
    await register_invitees(platform, "inv", ["a"], when="2026-12-02T10:00:00+08:00")
    await register_invitees(platform, "inv", ["b"], when="2026-12-02T11:00:00+08:00")
    await post(platform, event("account.opened", "a", "2026-12-03T10:00:00+08:00"))
    await platform.drain()
    # An operator gives a's deposit node to x: inv keeps registration and account opening.
    changed = await platform.referral.put(
        "/v1/bindings/a/deposit", json={"inviter_id": "x"}, headers=platform.operator()
    )
    assert changed.status_code == 200, changed.text

    page = await invitees(platform, "inv")
    assert [i["invitee_id"] for i in page["items"]] == ["b", "a"]  # newest first
    a = page["items"][1]
    assert a["channel"] == "invite_code"
    progress = {n["node"]: (n["completed_at"] is not None, n["mine"]) for n in a["nodes"]}
    assert progress == {
        "registration": (True, True),
        "account_opening": (True, True),
        "deposit": (False, False),
    }
    x = await invitees(platform, "x")
    assert [(i["invitee_id"], [n["mine"] for n in i["nodes"]]) for i in x["items"]] == [
        ("a", [False, False, True])
    ]
    # Pages: one invitee at a time, each once.
    first = await invitees(platform, "inv", limit=1)
    second = await invitees(platform, "inv", limit=1, cursor=first["next_cursor"])
    assert [i["invitee_id"] for i in first["items"] + second["items"]] == ["b", "a"]
    assert second["next_cursor"] is None
    assert (await invitees(platform, "nobody"))["items"] == []
    as_operator = await platform.referral.get("/v1/me/invitees", headers=platform.operator())
    assert as_operator.status_code == 403
