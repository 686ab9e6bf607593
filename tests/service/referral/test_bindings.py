"""Bindings per node (SPEC §2.2): self-binding, operator binds and changes, frozen nodes,
self-invitation and cycles, history, effective inviters and the events sent out."""

from __future__ import annotations

from datetime import timedelta

from contracts.payloads import Node
from tests.service.harness import Platform
from tests.service.referral.steps import (
    READ_ONLY,
    chain,
    complete,
    invite_code,
    op_bind,
    op_change,
    outbox,
    register_with_code,
    self_bind,
)


async def details(platform: Platform, invitee: str, tenant: str = "tenant-a") -> dict:
    response = await platform.referral.get(
        f"/v1/bindings/{invitee}", headers=platform.operator(tenant)
    )
    assert response.status_code == 200, response.text
    return response.json()


def node_of(body: dict, node: str) -> dict:
    return next(n for n in body["nodes"] if n["node"] == node)


async def test_user_binds_once_with_a_code(platform: Platform) -> None:
    code = await invite_code(platform, "u-a")
    other = await invite_code(platform, "u-c")
    bound = await self_bind(platform, "u-b", code.lower())
    assert bound.status_code == 201, bound.text
    body = bound.json()
    assert body["inviter_id"] == "u-a" and body["invitee_id"] == "u-b"
    assert body["node"] == "registration" and body["channel"] == "invite_code"
    assert body["app_id"] == "broker-app" and body["operator_id"] is None
    again = await self_bind(platform, "u-b", other)
    assert again.status_code == 409 and again.json()["code"] == "already_bound"
    registration = node_of(await details(platform, "u-b"), "registration")
    assert registration["binding"]["inviter_id"] == "u-a"


async def test_own_code_is_self_invitation(platform: Platform) -> None:
    code = await invite_code(platform, "u-a")
    response = await self_bind(platform, "u-a", code)
    assert response.status_code == 422 and response.json()["code"] == "self_invitation"
    by_hand = await op_bind(platform, "u-x", "u-x", "deposit")
    assert by_hand.status_code == 422 and by_hand.json()["code"] == "self_invitation"


async def test_cycle_of_two_is_refused(platform: Platform) -> None:
    code_b = await invite_code(platform, "u-b")
    await chain(platform, ["u-a", "u-b"])  # b invited by a
    response = await self_bind(platform, "u-a", code_b)
    assert response.status_code == 409 and response.json()["code"] == "binding_cycle"
    by_hand = await op_bind(platform, "u-a", "u-b")
    assert by_hand.status_code == 409 and by_hand.json()["code"] == "binding_cycle"


async def test_cycle_of_five_is_refused_and_a_longer_chain_is_not_a_cycle(
    platform: Platform,
) -> None:
    users = ["u-1", "u-2", "u-3", "u-4", "u-5"]
    await chain(platform, users)  # u-5 → u-4 → u-3 → u-2 → u-1
    code_5 = await invite_code(platform, "u-5")
    refused = await self_bind(platform, "u-1", code_5)
    assert refused.status_code == 409 and refused.json()["code"] == "binding_cycle"
    assert (await op_bind(platform, "u-1", "u-3")).json()["code"] == "binding_cycle"
    # An outsider above the chain's top is fine, and u-1 still has no inviter.
    assert node_of(await details(platform, "u-1"), "registration")["binding"] is None
    assert (await self_bind(platform, "u-1", await invite_code(platform, "u-0"))).status_code == 201


async def test_cycles_are_refused_at_the_other_nodes_too(platform: Platform) -> None:
    assert (await op_change(platform, "u-b", "deposit", "u-a")).status_code == 200
    assert (await op_change(platform, "u-c", "deposit", "u-b")).status_code == 200
    cycle = await op_change(platform, "u-a", "deposit", "u-c")
    assert cycle.status_code == 409 and cycle.json()["code"] == "binding_cycle"
    # A registration inviter is u-a's effective deposit inviter while u-a has no deposit
    # inviter of its own: u-c would then close the deposit cycle.
    through_fallback = await op_bind(platform, "u-a", "u-c")
    assert through_fallback.status_code == 409
    assert through_fallback.json()["code"] == "binding_cycle"
    assert through_fallback.json()["node"] == "deposit"
    # With a deposit inviter of its own, u-a's registration inviter closes no cycle.
    assert (await op_change(platform, "u-a", "deposit", "u-d")).status_code == 200
    assert (await op_bind(platform, "u-a", "u-c")).status_code == 201


async def test_operator_binds_by_hand_with_their_id(platform: Platform) -> None:
    response = await op_bind(platform, "u-b", "u-a", "account_opening")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["channel"] == "operator" and body["operator_id"] == "ops-1"
    twice = await op_bind(platform, "u-b", "u-c", "account_opening")
    assert twice.status_code == 409 and twice.json()["code"] == "already_bound"
    wrong_channel = await op_bind(platform, "u-d", "u-a", channel="share_link")
    assert wrong_channel.status_code == 422
    assert wrong_channel.json()["code"] == "channel_not_allowed"


async def test_service_binds_by_share_link(platform: Platform) -> None:
    response = await platform.referral.post(
        "/v1/bindings",
        json={"invitee_id": "u-b", "inviter_id": "u-a", "node": "registration"},
        headers=platform.service(),
    )
    assert response.status_code == 201 and response.json()["channel"] == "share_link"
    operator_channel = await platform.referral.post(
        "/v1/bindings",
        json={
            "invitee_id": "u-c",
            "inviter_id": "u-a",
            "node": "registration",
            "channel": "operator",
        },
        headers=platform.service(),
    )
    assert operator_channel.status_code == 422


async def test_operator_changes_account_opening_and_deposit_inviters(platform: Platform) -> None:
    await chain(platform, ["u-a", "u-b"])
    first = await op_change(platform, "u-b", "account_opening", "u-c")
    assert first.status_code == 200 and first.json()["inviter_id"] == "u-c"
    platform.clock.advance(timedelta(minutes=5))
    second = await op_change(platform, "u-b", "account_opening", "u-d")
    assert second.status_code == 200 and second.json()["inviter_id"] == "u-d"
    unchanged = await op_change(platform, "u-b", "account_opening", "u-d")
    assert unchanged.status_code == 200
    body = await details(platform, "u-b")
    history = [
        (h["node"], h["action"], h["previous_inviter_id"], h["inviter_id"], h["actor"])
        for h in body["history"]
    ]
    assert history == [
        ("registration", "bound", None, "u-a", "operator:ops-1"),
        ("account_opening", "bound", None, "u-c", "operator:ops-1"),
        ("account_opening", "rebound", "u-c", "u-d", "operator:ops-1"),
    ]
    effective = {n["node"]: n["effective_inviter_id"] for n in body["nodes"]}
    assert effective == {"registration": "u-a", "account_opening": "u-d", "deposit": "u-a"}


async def test_registration_inviter_cannot_be_changed(platform: Platform) -> None:
    await chain(platform, ["u-a", "u-b"])
    response = await op_change(platform, "u-b", "registration", "u-c")
    assert response.status_code == 422 and response.json()["code"] == "node_not_changeable"


async def test_completed_node_is_frozen(platform: Platform) -> None:
    await op_change(platform, "u-b", "account_opening", "u-a")
    await complete(platform, "u-b", Node.account_opening)
    await complete(platform, "u-b", Node.account_opening)  # redelivered: no effect
    changed = await op_change(platform, "u-b", "account_opening", "u-c")
    assert changed.status_code == 409 and changed.json()["code"] == "node_completed"
    # A completed deposit node without an inviter cannot get one either.
    await complete(platform, "u-b", Node.deposit)
    bound = await op_bind(platform, "u-b", "u-c", "deposit")
    assert bound.status_code == 409 and bound.json()["code"] == "node_completed"
    body = await details(platform, "u-b")
    assert node_of(body, "account_opening")["frozen"] is True
    assert node_of(body, "account_opening")["binding"]["inviter_id"] == "u-a"
    assert node_of(body, "deposit")["effective_inviter_id"] is None


async def test_node_completion_is_idempotent_and_keeps_the_first_time(platform: Platform) -> None:
    first_at = platform.clock.now()
    await complete(platform, "u-b", Node.deposit, at=first_at, event_id="e-1")
    await complete(platform, "u-b", Node.deposit, at=first_at + timedelta(days=1), event_id="e-2")
    deposit = node_of(await details(platform, "u-b"), "deposit")
    assert deposit["completed_at"].startswith(first_at.date().isoformat())


async def test_self_binding_closes_after_the_tenants_grace(platform: Platform) -> None:
    code = await invite_code(platform, "u-a")
    registered_at = platform.clock.now()
    await complete(platform, "u-late", Node.registration, at=registered_at)
    await complete(platform, "u-soon", Node.registration, at=registered_at)

    platform.clock.advance(timedelta(hours=71))
    assert (await self_bind(platform, "u-soon", code)).status_code == 201
    platform.clock.advance(timedelta(hours=1))
    late = await self_bind(platform, "u-late", code)
    assert late.status_code == 409 and late.json()["code"] == "node_completed"
    by_back_end = await platform.referral.post(
        "/v1/bindings",
        json={"invitee_id": "u-late", "inviter_id": "u-a", "node": "registration"},
        headers=platform.service(),
    )
    assert by_back_end.json()["code"] == "node_completed"

    # The tenant widens its grace: the user may bind again.
    put = await platform.referral.put(
        "/v1/settings",
        json={"registration_bind_grace_hours": 96},
        headers={**platform.operator(), "If-Match": '"0"'},
    )
    assert put.status_code == 200 and put.json()["is_default"] is False
    assert (await self_bind(platform, "u-late", code)).status_code == 201


async def test_grace_settings_default_and_permissions(platform: Platform) -> None:
    reader = platform.operator(permissions=READ_ONLY)
    read = await platform.referral.get("/v1/settings", headers=reader)
    assert read.json() == {
        "registration_bind_grace_hours": 72,
        "is_default": True,
        "version": 0,
        "updated_by": None,
        "updated_at": None,
    }
    denied = await platform.referral.put(
        "/v1/settings",
        json={"registration_bind_grace_hours": 0},
        headers=platform.operator(permissions=READ_ONLY),
    )
    assert denied.status_code == 403
    assert (
        await platform.referral.put(
            "/v1/settings", json={"registration_bind_grace_hours": -1}, headers=platform.operator()
        )
    ).status_code == 422
    await platform.referral.put(
        "/v1/settings",
        json={"registration_bind_grace_hours": 0},
        headers={**platform.operator(), "If-Match": '"0"'},
    )
    other = await platform.referral.get("/v1/settings", headers=platform.operator("tenant-b"))
    assert other.json()["registration_bind_grace_hours"] == 72
    # Grace 0: registered means frozen at once.
    await complete(platform, "u-b", Node.registration)
    code = await invite_code(platform, "u-a")
    assert (await self_bind(platform, "u-b", code)).json()["code"] == "node_completed"


async def test_registration_through_a_code_binds_then_completes(platform: Platform) -> None:
    code = await invite_code(platform, "u-a")
    await register_with_code(platform, "u-b", code, "evt-reg-b")
    await register_with_code(platform, "u-b", code, "evt-reg-b-again")
    body = await details(platform, "u-b")
    registration = node_of(body, "registration")
    assert registration["binding"]["inviter_id"] == "u-a"
    assert registration["binding"]["channel"] == "invite_code"
    assert registration["completed_at"] is not None
    assert len(body["history"]) == 1
    # A cycle through a code at registration is refused but the node still completes.
    code_b = await invite_code(platform, "u-b")
    await register_with_code(platform, "u-a", code_b, "evt-reg-a")
    a = node_of(await details(platform, "u-a"), "registration")
    assert a["binding"] is None and a["completed_at"] is not None


async def test_every_change_writes_an_event_for_activity_service(platform: Platform) -> None:
    code = await invite_code(platform, "u-a")
    await self_bind(platform, "u-b", code)
    await op_change(platform, "u-b", "deposit", "u-c")
    await op_change(platform, "u-b", "deposit", "u-d")
    await op_change(platform, "u-b", "deposit", "u-d")  # no change, no event
    await self_bind(platform, "u-b", code)  # refused, no event
    events = await outbox(platform)
    assert {e["job_name"] for e in events} == {"activity.binding_changed"}
    assert {e["queue"] for e in events} == {"activity"}
    summary = sorted(
        (e["node"], e["action"], e["previous_inviter_id"], e["inviter_id"], e["channel"])
        for e in events
    )
    assert summary == [
        ("deposit", "bound", None, "u-c", "operator"),
        ("deposit", "rebound", "u-c", "u-d", "operator"),
        ("registration", "bound", None, "u-a", "invite_code"),
    ]
    assert all(e["tenant_id"] == "tenant-a" and e["invitee_id"] == "u-b" for e in events)
    # The activity service's consumer takes them.
    await platform.drain()
    assert (await outbox(platform)) == events


async def test_another_tenant_sees_and_changes_nothing(platform: Platform) -> None:
    await chain(platform, ["u-a", "u-b"])
    await op_change(platform, "u-b", "deposit", "u-c")
    body = await details(platform, "u-b", tenant="tenant-b")
    assert all(n["binding"] is None and n["effective_inviter_id"] is None for n in body["nodes"])
    assert body["history"] == []
    listed = await platform.referral.get("/v1/bindings", headers=platform.operator("tenant-b"))
    assert listed.json()["items"] == []
    ops_b = platform.operator("tenant-b")
    user = await platform.referral.get("/v1/users/u-b/bindings", headers=ops_b)
    assert user.json()["items"] == []
    stats = await platform.referral.get("/v1/inviters/u-a/stats", headers=ops_b)
    assert all(n["invitee_count"] == 0 for n in stats.json()["nodes"])
    # Binding in tenant-b does not touch tenant-a's graph.
    assert (await op_bind(platform, "u-a", "u-b", tenant="tenant-b")).status_code == 201
    assert node_of(await details(platform, "u-a"), "registration")["binding"] is None


async def test_permissions_of_binding_endpoints(platform: Platform) -> None:
    reader = platform.operator(permissions=READ_ONLY)
    rights_only = platform.operator(permissions=["RightsSystemFull"])
    body = {"invitee_id": "u-b", "inviter_id": "u-a", "node": "registration"}
    post = platform.referral.post
    get = platform.referral.get
    assert (await post("/v1/bindings", json=body, headers=reader)).status_code == 403
    assert (
        await platform.referral.put(
            "/v1/bindings/u-b/deposit", json={"inviter_id": "u-a"}, headers=reader
        )
    ).status_code == 403
    assert (await platform.referral.get("/v1/bindings", headers=reader)).status_code == 200
    assert (await platform.referral.get("/v1/bindings/u-b", headers=reader)).status_code == 200
    assert (await platform.referral.get("/v1/bindings", headers=rights_only)).status_code == 403
    user = platform.user("u-b")
    assert (await post("/v1/bindings", json=body, headers=user)).status_code == 403
    assert (await platform.referral.get("/v1/bindings/u-b", headers=user)).status_code == 403
    assert (await get("/v1/bindings/u-b", headers=platform.service())).status_code == 200
    bad = await platform.referral.post(
        "/v1/bindings", json={**body, "node": "withdrawal"}, headers=platform.operator()
    )
    assert bad.status_code == 422 and bad.json()["code"] == "validation_error"
