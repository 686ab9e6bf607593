"""Node completions applied a delivery at a time (``service.complete_nodes``): one lock
statement and one insert for all of them, idempotent on (tenant, user, node), the first
completion's time kept; and the rows a registration chunk writes in one statement."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text

from contracts import jobs
from contracts.payloads import BindingChanged, Node, NodeCompleted, UserRegistered
from referral_service.bindings import rules, service, tasks
from referral_service.bindings.tasks import REGISTRATIONS_PER_TRANSACTION
from referral_service.invite_codes.repository import InviteCodeRepository
from service_kit.outbox.bundles import items_of
from tests.service.harness import Platform
from tests.service.referral.steps import (
    deliver,
    invite_code,
    op_change,
    registration,
    registration_bindings,
    rows,
)


def _completion(
    platform: Platform,
    user: str,
    node: Node,
    event_id: str,
    later: timedelta = timedelta(0),
    tenant: str = "tenant-a",
) -> dict[str, Any]:
    fact = NodeCompleted(
        tenant_id=tenant,
        user_id=user,
        node=node,
        completed_at=platform.clock.now() + later,
        event_id=event_id,
    )
    return fact.model_dump(mode="json")


async def _deliver_completions(platform: Platform, payloads: list[dict[str, Any]]) -> Any:
    return await platform.deliver("referral", jobs.REFERRAL_NODE_COMPLETED, payloads)


async def _completions(platform: Platform) -> dict[tuple[str, str, str], tuple[str, Any]]:
    found = await rows(
        platform, "SELECT tenant_id, user_id, node, event_id, completed_at FROM node_completions"
    )
    return {(r.tenant_id, r.user_id, r.node): (r.event_id, r.completed_at) for r in found}


async def test_a_delivery_of_completions_records_each_once_and_keeps_the_first(
    platform: Platform,
) -> None:
    first = _completion(platform, "u-1", Node.deposit, "evt-dep-1")
    worker = await _deliver_completions(
        platform,
        [
            first,
            _completion(platform, "u-2", Node.deposit, "evt-dep-2"),
            _completion(platform, "u-1", Node.account_opening, "evt-open-1"),
            # The same user and node again in the same delivery: the first is kept.
            _completion(platform, "u-1", Node.deposit, "evt-dep-1b", later=timedelta(hours=1)),
            # Another tenant's user of the same id: a completion of its own.
            _completion(platform, "u-1", Node.deposit, "evt-dep-b", tenant="tenant-b"),
        ],
    )
    assert worker.jobs_complete == 1 and worker.jobs_failed == 0
    recorded = await _completions(platform)
    assert {key: event for key, (event, _) in recorded.items()} == {
        ("tenant-a", "u-1", "deposit"): "evt-dep-1",
        ("tenant-a", "u-2", "deposit"): "evt-dep-2",
        ("tenant-a", "u-1", "account_opening"): "evt-open-1",
        ("tenant-b", "u-1", "deposit"): "evt-dep-b",
    }
    first_at = recorded[("tenant-a", "u-1", "deposit")][1]
    assert first_at == NodeCompleted.model_validate(first).completed_at

    # Delivered again, with an earlier completion too: nothing changes.
    again = await _deliver_completions(
        platform,
        [first, _completion(platform, "u-1", Node.deposit, "evt-x", later=-timedelta(hours=1))],
    )
    assert again.jobs_complete == 1 and again.jobs_failed == 0
    assert await _completions(platform) == recorded


async def test_a_broken_completion_fails_alone_and_freezes_nothing(platform: Platform) -> None:
    await invite_code(platform, "u-a")
    worker = await _deliver_completions(
        platform,
        [
            _completion(platform, "u-b", Node.deposit, "evt-dep-b"),
            {"tenant_id": "tenant-a", "user_id": "u-broken"},  # not a completion
        ],
    )
    # Applied one by one after the broken one failed: the other is recorded.
    assert worker.jobs_failed == 1 and worker.jobs_complete == 0
    assert set(await _completions(platform)) == {("tenant-a", "u-b", "deposit")}
    # The recorded completion freezes the node.
    refused = await op_change(platform, "u-b", "deposit", "u-a")
    assert refused.status_code == 409 and refused.json()["code"] == "node_completed"


async def test_a_delivery_of_completions_waits_for_a_bind_holding_a_users_lock(
    platform: Platform,
) -> None:
    keys = rules.lock_keys("tenant-a", Node.deposit, ["u-2"])
    async with platform.db("referral").engine.connect() as holder:
        await holder.execute(
            text(
                "SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) "
                "FROM unnest(CAST(:keys AS text[])) AS k"
            ),
            {"keys": keys},
        )
        delivery = asyncio.create_task(
            _deliver_completions(
                platform,
                [
                    _completion(platform, "u-1", Node.deposit, "evt-1"),
                    _completion(platform, "u-2", Node.deposit, "evt-2"),
                ],
            )
        )
        await asyncio.sleep(1.0)
        assert not delivery.done()
        assert await _completions(platform) == {}  # nothing committed while it waits
        await holder.rollback()
    worker = await asyncio.wait_for(delivery, timeout=10)
    assert worker.jobs_complete == 1
    assert set(await _completions(platform)) == {
        ("tenant-a", "u-1", "deposit"),
        ("tenant-a", "u-2", "deposit"),
    }


async def test_a_registration_chunk_writes_each_bindings_history_and_message(
    platform: Platform,
) -> None:
    code = await invite_code(platform, "u-a")
    at = platform.clock.now()
    payloads = [
        UserRegistered(
            tenant_id="tenant-a",
            app_id="broker-app",
            user_id=f"u-{i}",
            invite_code=code,
            registered_at=at,
            event_id=f"evt-{i}",
            channel="share_link",
            activity_code="A20261123001",
        ).model_dump(mode="json")
        for i in range(3)
    ]
    assert (await deliver(platform, payloads)).jobs_complete == 1
    assert await registration_bindings(platform) == {
        ("tenant-a", f"u-{i}"): "u-a" for i in range(3)
    }
    bindings = await rows(
        platform,
        "SELECT invitee_id, channel, app_id, activity_code, bound_at, created_at, updated_at, "
        "operator_id FROM bindings",
    )
    for b in bindings:
        assert (b.channel, b.app_id) == ("share_link", "broker-app")
        assert b.activity_code == "A20261123001"
        assert b.bound_at == b.created_at == b.updated_at == at and b.operator_id is None
    history = await rows(
        platform,
        "SELECT invitee_id, node, action, previous_inviter_id, inviter_id, channel, "
        "activity_code, actor, at FROM binding_history ORDER BY invitee_id",
    )
    assert [
        (h.invitee_id, h.node, h.action, h.previous_inviter_id, h.inviter_id, h.channel)
        for h in history
    ] == [(f"u-{i}", "registration", "bound", None, "u-a", "share_link") for i in range(3)]
    assert {(h.activity_code, h.actor, h.at) for h in history} == {
        ("A20261123001", "system:registration", at)
    }
    messages = await rows(
        platform,
        "SELECT id, queue, job_name, job_id, attempts, sent_at, payload FROM outbox_messages "
        "WHERE job_name = 'activity.binding_changed'",
    )
    # One message for the chunk: a bundle of its bindings, naming the tenant.
    assert len(messages) == 1
    (m,) = messages
    assert (m.queue, m.job_id, m.attempts, m.sent_at) == ("activity", str(m.id), 0, None)
    assert m.payload["tenant_id"] == "tenant-a"
    changed = sorted(
        (BindingChanged.model_validate(item) for item in items_of(m.payload)),
        key=lambda fact: fact.invitee_id,
    )
    assert changed == [
        BindingChanged(
            tenant_id="tenant-a",
            invitee_id=f"u-{i}",
            node=Node.registration,
            inviter_id="u-a",
            previous_inviter_id=None,
            channel="share_link",
            action="bound",
            at=at,
        )
        for i in range(3)
    ]
    # The activity service's consumer takes the bundle (as its three facts).
    taken = await platform.deliver("activity", jobs.ACTIVITY_BINDING_CHANGED, [m.payload])
    assert taken.jobs_complete == 1 and taken.jobs_failed == 0


async def test_each_registration_of_a_delivery_is_validated_once(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    code = await invite_code(platform, "u-a")
    payloads = [registration(platform, f"u-{i}", code, f"evt-{i}") for i in range(3)]
    validated: list[str] = []
    original = UserRegistered.model_validate

    def counted(payload: Any, *args: Any, **kwargs: Any) -> UserRegistered:
        validated.append(payload["user_id"])
        return original(payload, *args, **kwargs)

    # ``pending``, ``prepare`` and the job each read the delivery's registrations.
    monkeypatch.setattr(UserRegistered, "model_validate", counted)
    assert (await deliver(platform, payloads)).jobs_complete == 1
    assert sorted(validated) == ["u-0", "u-1", "u-2"]
    assert len(await registration_bindings(platform)) == 3


async def test_a_delivery_of_many_chunks_asks_once_which_registrations_are_applied(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    code = await invite_code(platform, "u-a")
    first = registration(platform, "u-first", code, "evt-first")
    await deliver(platform, [first])
    asked: list[int] = []
    original = service.applied_registrations

    async def counted(session: Any, registrations: list[tuple[str, str, str]]) -> Any:
        asked.append(len(registrations))
        return await original(session, registrations)

    monkeypatch.setattr(service, "applied_registrations", counted)
    count = 2 * REGISTRATIONS_PER_TRANSACTION + 3  # three chunks
    payloads = [first, *(registration(platform, f"u-{i}", code, f"evt-{i}") for i in range(count))]
    worker = await deliver(platform, payloads)

    # Asked for the whole delivery before its first chunk; each chunk's answer is that one.
    assert worker.jobs_complete == 1 and asked == [count + 1]
    bound = await registration_bindings(platform)
    assert bound == {("tenant-a", u): "u-a" for u in ["u-first", *(f"u-{i}" for i in range(count))]}
    history = await rows(platform, "SELECT invitee_id FROM binding_history")
    assert len(history) == count + 1  # the applied one was skipped, not bound again


async def test_a_delivery_of_many_chunks_reads_each_code_and_grace_once(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    code_a = await invite_code(platform, "u-a")
    code_b = await invite_code(platform, "u-b")
    codes_read: list[set[tuple[str, str]]] = []
    graces_read: list[str] = []
    owners_of = InviteCodeRepository.owners_of
    grace = tasks.registration_grace

    async def counted_owners(self: Any, tenant_id: str, codes: Any) -> Any:
        codes_read.append(set(codes))
        return await owners_of(self, tenant_id, codes)

    async def counted_grace(session: Any, tenant_id: str, default_hours: int) -> Any:
        graces_read.append(tenant_id)
        return await grace(session, tenant_id, default_hours)

    monkeypatch.setattr(InviteCodeRepository, "owners_of", counted_owners)
    monkeypatch.setattr(tasks, "registration_grace", counted_grace)
    size = REGISTRATIONS_PER_TRANSACTION
    payloads = [registration(platform, f"u-{i}", code_a, f"evt-{i}") for i in range(size)]
    payloads += [
        registration(platform, f"u-{i}", code_b if i % 2 else code_a, f"evt-{i}")
        for i in range(size, 2 * size + 3)
    ]
    worker = await deliver(platform, payloads)

    assert worker.jobs_complete == 1
    # The second chunk reads only the code the first did not name; the third reads none.
    assert codes_read == [{("broker-app", code_a)}, {("broker-app", code_b)}]
    assert graces_read == ["tenant-a"]
    bound = await registration_bindings(platform)
    assert bound == {
        ("tenant-a", f"u-{i}"): "u-b" if i >= size and i % 2 else "u-a" for i in range(2 * size + 3)
    }
