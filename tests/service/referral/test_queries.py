"""Operator queries: the three tabs with search, the per-user view, and inviter counts."""

from __future__ import annotations

from datetime import timedelta

from contracts.payloads import Node
from tests.service.harness import Platform
from tests.service.referral.steps import READ_ONLY, complete, op_bind, op_change


async def seed(platform: Platform) -> None:
    """u-a invites b, c, d at registration; c's account opening goes to u-e, d's deposit to
    u-a by hand. b completes account opening, c completes deposit."""
    for invitee in ("u-b", "u-c", "u-d"):
        assert (await op_bind(platform, invitee, "u-a")).status_code == 201
        platform.clock.advance(timedelta(hours=1))
    assert (await op_change(platform, "u-c", "account_opening", "u-e")).status_code == 200
    assert (await op_change(platform, "u-d", "deposit", "u-a")).status_code == 200
    await complete(platform, "u-b", Node.account_opening)
    await complete(platform, "u-c", Node.deposit)


async def listed(platform: Platform, **params: str) -> dict:
    response = await platform.referral.get(
        "/v1/bindings", params=params, headers=platform.operator(permissions=READ_ONLY)
    )
    assert response.status_code == 200, response.text
    return response.json()


async def test_tabs_per_node_and_search(platform: Platform) -> None:
    await seed(platform)
    registration = await listed(platform, node="registration")
    assert [b["invitee_id"] for b in registration["items"]] == ["u-d", "u-c", "u-b"]
    assert registration["next_cursor"] is None
    opening = await listed(platform, node="account_opening")
    assert [(b["invitee_id"], b["inviter_id"]) for b in opening["items"]] == [("u-c", "u-e")]
    by_invitee = await listed(platform, invitee_id="u-d")
    assert {b["node"] for b in by_invitee["items"]} == {"registration", "deposit"}
    by_inviter = await listed(platform, node="deposit", inviter_id="u-a")
    assert [b["invitee_id"] for b in by_inviter["items"]] == ["u-d"]
    assert (await listed(platform, inviter_id="nobody"))["items"] == []


async def test_list_shows_completion_and_pages(platform: Platform) -> None:
    await seed(platform)
    await complete(platform, "u-b", Node.registration)
    seen: list[str] = []
    cursor = None
    while True:
        params = {"node": "registration", "limit": "2"}
        if cursor:
            params["cursor"] = cursor
        page = await listed(platform, **params)
        seen += [b["invitee_id"] for b in page["items"]]
        for b in page["items"]:
            assert (b["completed_at"] is not None) == (b["invitee_id"] == "u-b")
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["u-d", "u-c", "u-b"]
    bad = await platform.referral.get(
        "/v1/bindings", params={"cursor": "nonsense"}, headers=platform.operator()
    )
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_cursor"


async def test_per_user_view_as_invitee_and_inviter(platform: Platform) -> None:
    await seed(platform)
    response = await platform.referral.get("/v1/users/u-a/bindings", headers=platform.operator())
    items = response.json()["items"]
    assert {(b["role"], b["invitee_id"], b["node"]) for b in items} == {
        ("inviter", "u-b", "registration"),
        ("inviter", "u-c", "registration"),
        ("inviter", "u-d", "registration"),
        ("inviter", "u-d", "deposit"),
    }
    platform.clock.advance(timedelta(minutes=1))
    assert (await op_bind(platform, "u-a", "u-z")).status_code == 201
    response = await platform.referral.get("/v1/users/u-a/bindings", headers=platform.operator())
    first = response.json()["items"][0]
    assert first["role"] == "invitee" and first["inviter_id"] == "u-z"
    service = await platform.referral.get("/v1/users/u-a/bindings", headers=platform.service())
    assert service.status_code == 403


async def stats(platform: Platform, inviter: str, **params: str) -> dict[str, tuple[int, int]]:
    response = await platform.referral.get(
        f"/v1/inviters/{inviter}/stats", params=params, headers=platform.service()
    )
    assert response.status_code == 200, response.text
    return {
        n["node"]: (n["invitee_count"], n["effective_invitee_count"])
        for n in response.json()["nodes"]
    }


async def test_inviter_counts_per_node_with_effective_fallback(platform: Platform) -> None:
    await seed(platform)
    # Registration: b, c, d. Account opening: none of its own; effective b, d (c has u-e).
    # Deposit: d of its own; effective b, d, and c falls back to u-a as well.
    assert await stats(platform, "u-a") == {
        "registration": (3, 3),
        "account_opening": (0, 2),
        "deposit": (1, 3),
    }
    assert await stats(platform, "u-e") == {
        "registration": (0, 0),
        "account_opening": (1, 1),
        "deposit": (0, 0),
    }


async def test_inviter_counts_completed_only_and_windowed(platform: Platform) -> None:
    start = platform.clock.now()
    await seed(platform)
    done = await stats(platform, "u-a", completed_only="true")
    assert done == {"registration": (0, 0), "account_opening": (0, 1), "deposit": (0, 1)}
    # Window on bound time: b was bound at start, c one hour later, d two hours later.
    window = {
        "from": (start + timedelta(minutes=30)).isoformat(),
        "until": (start + timedelta(hours=2)).isoformat(),
    }
    assert (await stats(platform, "u-a", **window))["registration"] == (1, 1)
    # With completed_only the window is on completion time.
    later = {"from": (platform.clock.now() + timedelta(minutes=1)).isoformat()}
    assert await stats(platform, "u-a", completed_only="true", **later) == {
        "registration": (0, 0),
        "account_opening": (0, 0),
        "deposit": (0, 0),
    }
    bad = await platform.referral.get(
        "/v1/inviters/u-a/stats",
        params={"from": window["until"], "until": window["from"]},
        headers=platform.service(),
    )
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_window"
    naive = await platform.referral.get(
        "/v1/inviters/u-a/stats",
        params={"from": "2026-11-23T00:00:00"},
        headers=platform.service(),
    )
    assert naive.status_code == 422 and naive.json()["code"] == "naive_datetime"
