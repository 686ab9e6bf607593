"""Operators remove an account-opening or deposit inviter of a node not yet completed; the
history keeps it, and everything else is refused with the reason."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from contracts.payloads import Node
from tests.service.harness import Platform
from tests.service.referral.steps import READ_ONLY, chain, complete, op_change, outbox


async def unbind(
    platform: Platform, invitee: str, node: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    return await platform.referral.delete(
        f"/v1/bindings/{invitee}/{node}", headers=headers or platform.operator()
    )


async def details(platform: Platform, invitee: str) -> dict[str, Any]:
    response = await platform.referral.get(f"/v1/bindings/{invitee}", headers=platform.operator())
    return dict(response.json())


def node_state(body: dict[str, Any], node: str) -> dict[str, Any]:
    return next(n for n in body["nodes"] if n["node"] == node)


async def test_an_unbound_node_falls_back_to_the_registration_inviter(platform: Platform) -> None:
    await chain(platform, ["u-reg", "u-b"])
    assert (await op_change(platform, "u-b", "account_opening", "u-ao")).status_code == 200
    removed = await unbind(platform, "u-b", "account_opening")
    assert removed.status_code == 204, removed.text
    body = await details(platform, "u-b")
    ao = node_state(body, "account_opening")
    assert ao["binding"] is None and ao["effective_inviter_id"] == "u-reg"
    assert [(h["action"], h["previous_inviter_id"], h["inviter_id"]) for h in body["history"]] == [
        ("bound", None, "u-reg"),
        ("bound", None, "u-ao"),
        ("unbound", "u-ao", None),
    ]
    assert body["history"][-1]["actor"] == "operator:ops-1"
    last = (await outbox(platform))[-1]
    assert (last["action"], last["inviter_id"], last["previous_inviter_id"]) == (
        "unbound",
        None,
        "u-ao",
    )
    # Nothing left to remove; and it can be bound again.
    again = await unbind(platform, "u-b", "account_opening")
    assert again.status_code == 404 and again.json()["code"] == "binding_not_found"
    assert (await op_change(platform, "u-b", "account_opening", "u-ao2")).status_code == 200


async def test_what_cannot_be_removed_says_why(platform: Platform) -> None:
    await chain(platform, ["u-a", "u-b"])
    registration = await unbind(platform, "u-b", "registration")
    assert registration.status_code == 422 and registration.json()["code"] == "node_not_changeable"

    assert (await op_change(platform, "u-b", "deposit", "u-c")).status_code == 200
    await complete(platform, "u-b", Node.deposit)
    frozen = await unbind(platform, "u-b", "deposit")
    assert frozen.status_code == 409 and frozen.json()["code"] == "node_completed"

    # Completed by an acknowledged event no job has processed yet.
    assert (await op_change(platform, "u-b", "account_opening", "u-c")).status_code == 200
    ack = await platform.activity.post(
        "/v1/events",
        json={
            "event_id": "open-b",
            "type": "account.opened",
            "user_id": "u-b",
            "app_id": "broker-app",
            "occurred_at": "2026-11-23T02:00:00Z",
        },
        headers=platform.service(),
    )
    assert ack.status_code == 202
    acknowledged = await unbind(platform, "u-b", "account_opening")
    assert acknowledged.status_code == 409 and acknowledged.json()["code"] == "node_completed"

    # x's registration inviter is y, whose own AO inviter is x: x's own AO inviter is all
    # that keeps x from being its own effective AO inviter (x → y → x).
    assert (await op_change(platform, "u-x", "account_opening", "u-z")).status_code == 200
    await chain(platform, ["u-y", "u-x"])
    assert (await op_change(platform, "u-y", "account_opening", "u-x")).status_code == 200
    cycle = await unbind(platform, "u-x", "account_opening")
    assert cycle.status_code == 409 and cycle.json()["code"] == "binding_cycle"
    assert node_state(await details(platform, "u-x"), "account_opening")["binding"] is not None

    # Permissions and tenants.
    read_only = await unbind(
        platform, "u-x", "account_opening", platform.operator(permissions=READ_ONLY)
    )
    assert read_only.status_code == 403
    as_service = await unbind(platform, "u-x", "account_opening", platform.service())
    assert as_service.status_code == 403
    elsewhere = await unbind(platform, "u-x", "account_opening", platform.operator("tenant-b"))
    assert elsewhere.status_code == 404
    bad_node = await unbind(platform, "u-x", "withdrawal")
    assert bad_node.status_code == 422


async def test_concurrent_removals_remove_once(platform: Platform) -> None:
    assert (await op_change(platform, "u-b", "deposit", "u-c")).status_code == 200
    responses = await asyncio.gather(*(unbind(platform, "u-b", "deposit") for _ in range(4)))
    assert sorted(r.status_code for r in responses) == [204, 404, 404, 404]
    history = (await details(platform, "u-b"))["history"]
    assert [h["action"] for h in history] == ["bound", "unbound"]
