"""Nobody may become their own effective inviter (the node's own inviter, else the
registration inviter, as rewards use it), alone or with racing binds; operators add a
missing registration inviter after the grace; share links are recorded."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from contracts.payloads import Node
from tests.service.harness import Platform
from tests.service.referral.steps import (
    chain,
    complete,
    invite_code,
    op_bind,
    op_change,
    register_with_code,
    self_bind,
)


async def details(platform: Platform, invitee: str) -> dict[str, Any]:
    response = await platform.referral.get(f"/v1/bindings/{invitee}", headers=platform.operator())
    assert response.status_code == 200, response.text
    return dict(response.json())


def effective(body: dict[str, Any], node: str) -> str | None:
    return next(n["effective_inviter_id"] for n in body["nodes"] if n["node"] == node)


def refused_as_cycle(response: Any, node: str) -> None:
    assert response.status_code == 409, response.text
    assert response.json()["code"] == "binding_cycle"
    assert response.json()["node"] == node


async def test_a_node_inviter_is_refused_when_the_registration_fallback_closes_a_cycle(
    platform: Platform,
) -> None:
    await chain(platform, ["u-a", "u-b"])  # a invited b at registration
    for node in ("account_opening", "deposit"):
        refused_as_cycle(await op_change(platform, "u-a", node, "u-b"), node)
        refused_as_cycle(await op_bind(platform, "u-a", "u-b", node), node)
    # Through a longer chain of fall-backs and own inviters: c's own AO inviter is b.
    assert (await op_change(platform, "u-c", "account_opening", "u-b")).status_code == 200
    refused_as_cycle(await op_change(platform, "u-a", "account_opening", "u-c"), "account_opening")
    # The deposit graph is another one: c has no deposit inviter and no registration one.
    assert (await op_change(platform, "u-a", "deposit", "u-c")).status_code == 200
    body = await details(platform, "u-a")
    assert effective(body, "account_opening") is None
    assert effective(body, "deposit") == "u-c"


async def test_a_registration_bind_is_refused_when_it_closes_a_cycle_at_another_node(
    platform: Platform,
) -> None:
    # b's own account-opening inviter is a. a's registration inviter b would become a's
    # effective account-opening inviter too: a ↔ b.
    assert (await op_change(platform, "u-b", "account_opening", "u-a")).status_code == 200
    refused_as_cycle(await op_bind(platform, "u-a", "u-b"), "account_opening")
    code_b = await invite_code(platform, "u-b")
    refused_as_cycle(await self_bind(platform, "u-a", code_b), "account_opening")
    # The registration job refuses it too, and still completes the node.
    await register_with_code(platform, "u-a", code_b, "evt-reg-a")
    body = await details(platform, "u-a")
    assert effective(body, "registration") is None
    assert body["nodes"][0]["completed_at"] is not None
    # Once a has an account-opening inviter of its own, b no longer falls through there.
    assert (await op_change(platform, "u-a", "account_opening", "u-z")).status_code == 200
    assert (await op_bind(platform, "u-a", "u-b")).status_code == 201
    body = await details(platform, "u-a")
    assert (effective(body, "registration"), effective(body, "account_opening")) == ("u-b", "u-z")


async def test_a_registration_bind_never_closes_a_cycle_through_mixed_nodes(
    platform: Platform,
) -> None:
    # deposit: c → b (own), b → a (registration fall-back). a invited by c would close
    # a → c → b → a in the deposit graph.
    await chain(platform, ["u-a", "u-b"])
    assert (await op_change(platform, "u-c", "deposit", "u-b")).status_code == 200
    refused_as_cycle(await op_bind(platform, "u-a", "u-c"), "deposit")


async def test_racing_binds_at_different_nodes_cannot_close_a_cycle_together(
    platform: Platform,
) -> None:
    # Alone each is fine; together "b invited by a" and "a's AO inviter is b" make a and b
    # each other's effective account-opening inviter.
    for round_ in range(6):
        a, b = f"x{round_}-a", f"x{round_}-b"
        responses = await asyncio.gather(
            op_bind(platform, b, a), op_change(platform, a, "account_opening", b)
        )
        assert sorted(r.status_code for r in responses) in ([200, 409], [201, 409])
        loser = next(r for r in responses if r.status_code == 409)
        assert loser.json()["code"] == "binding_cycle"


async def test_racing_registration_binds_closing_a_cycle_through_fallbacks(
    platform: Platform,
) -> None:
    # AO: a → q (own). Alone, "q invited by p" and "p invited by a" are fine; together the
    # AO graph would hold a → q → p → a.
    for round_ in range(6):
        a, p, q = f"y{round_}-a", f"y{round_}-p", f"y{round_}-q"
        assert (await op_change(platform, a, "account_opening", q)).status_code == 200
        responses = await asyncio.gather(op_bind(platform, q, p), op_bind(platform, p, a))
        assert sorted(r.status_code for r in responses) == [201, 409]


async def test_operator_adds_a_missing_registration_inviter_after_the_grace(
    platform: Platform,
) -> None:
    registered_at = platform.clock.now()
    await complete(platform, "u-late", Node.registration, at=registered_at)
    await complete(platform, "u-bound", Node.registration, at=registered_at)
    await chain(platform, ["u-first", "u-bound"])
    platform.clock.advance(timedelta(days=30))
    code = await invite_code(platform, "u-a")
    assert (await self_bind(platform, "u-late", code)).json()["code"] == "node_completed"

    added = await op_bind(platform, "u-late", "u-a")
    assert added.status_code == 201, added.text
    assert added.json()["channel"] == "operator" and added.json()["operator_id"] == "ops-1"
    body = await details(platform, "u-late")
    assert body["history"][-1] | {"at": None} == {
        "node": "registration",
        "action": "bound",
        "previous_inviter_id": None,
        "inviter_id": "u-a",
        "channel": "operator",
        "activity_code": None,
        "actor": "operator:ops-1",
        "at": None,
    }
    # Never replaces one, nor closes a cycle, nor binds oneself.
    assert (await op_bind(platform, "u-bound", "u-a")).json()["code"] == "already_bound"
    assert (await op_bind(platform, "u-late", "u-b")).json()["code"] == "already_bound"
    refused_as_cycle(await op_bind(platform, "u-a", "u-late"), "registration")
    assert (await op_bind(platform, "u-x", "u-x")).status_code == 422
    # Another tenant's operator sees none of it and binds its own user of that id.
    other = await platform.referral.post(
        "/v1/bindings",
        json={"invitee_id": "u-bound", "inviter_id": "u-a", "node": "registration"},
        headers=platform.operator("tenant-b"),
    )
    assert other.status_code == 201
    # Read-only operators cannot.
    read_only = await platform.referral.post(
        "/v1/bindings",
        json={"invitee_id": "u-new", "inviter_id": "u-a", "node": "registration"},
        headers=platform.operator(permissions=["ActivityCenterRead"]),
    )
    assert read_only.status_code == 403


async def test_a_share_link_binding_records_its_channel_and_activity(platform: Platform) -> None:
    by_service = await platform.referral.post(
        "/v1/bindings",
        json={
            "invitee_id": "u-b",
            "inviter_id": "u-a",
            "node": "registration",
            "channel": "share_link",
            "activity_code": "A20261123001",
        },
        headers=platform.service(),
    )
    assert by_service.status_code == 201, by_service.text
    assert by_service.json()["channel"] == "share_link"
    assert by_service.json()["activity_code"] == "A20261123001"
    history = (await details(platform, "u-b"))["history"]
    assert history[0]["channel"] == "share_link" and history[0]["activity_code"] == "A20261123001"
    # An activity code belongs to a share link only.
    wrong = await platform.referral.post(
        "/v1/bindings",
        json={
            "invitee_id": "u-c",
            "inviter_id": "u-a",
            "node": "registration",
            "channel": "invite_code",
            "activity_code": "A20261123001",
        },
        headers=platform.service(),
    )
    assert wrong.status_code == 422 and wrong.json()["code"] == "channel_not_allowed"


async def test_a_registration_through_a_share_link_records_the_channel(platform: Platform) -> None:
    code = await invite_code(platform, "u-sharer")
    event = {
        "event_id": "reg-shared",
        "type": "user.registered",
        "user_id": "u-new",
        "app_id": "broker-app",
        "occurred_at": "2026-11-23T02:00:00Z",
        "invite_code": code,
        "channel": "share_link",
        "activity_code": "A20261123001",
    }
    posted = await platform.activity.post("/v1/events", json=event, headers=platform.service())
    assert posted.status_code == 202, posted.text
    await platform.drain()
    binding = (await details(platform, "u-new"))["nodes"][0]["binding"]
    assert binding["inviter_id"] == "u-sharer"
    assert (binding["channel"], binding["activity_code"]) == ("share_link", "A20261123001")

    # Without the channel the code is an invite code; the activity needs the share link,
    # the share link needs both, and other events carry neither.
    bad = [
        {**event, "event_id": "bad-1", "channel": "share_link", "activity_code": None},
        {**event, "event_id": "bad-2", "channel": None},
        {**event, "event_id": "bad-3", "invite_code": None},
        {**event, "event_id": "bad-4", "type": "account.opened", "invite_code": None},
        {**event, "event_id": "bad-5", "channel": "carrier_pigeon"},
    ]
    for body in bad:
        body = {k: v for k, v in body.items() if v is not None}
        refused = await platform.activity.post("/v1/events", json=body, headers=platform.service())
        assert refused.status_code == 422, (body, refused.text)
