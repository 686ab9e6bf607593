"""Registrations delivered again (a delivery sent again by the outbox sweep, or a try that
stopped at its time budget): the applied ones are skipped in one query, without the bind's
locks, and a delivery bigger than its budget is finished over several tries."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from contracts.payloads import Node
from referral_service.bindings import rules
from referral_service.bindings.tasks import REGISTRATIONS_PER_TRANSACTION
from service_kit import worker as service_worker
from tests.service.harness import Platform
from tests.service.referral.steps import (
    deliver,
    invite_code,
    registration,
    registration_bindings,
    rows,
)


async def test_an_applied_registration_delivered_again_takes_no_lock(platform: Platform) -> None:
    code = await invite_code(platform, "u-a")
    first = registration(platform, "u-b", code, "evt-reg-b")
    assert (await deliver(platform, [first])).jobs_complete == 1
    assert await registration_bindings(platform) == {("tenant-a", "u-b"): "u-a"}

    # Another transaction holds the inviter's lock (a long bind of the same chain): the
    # applied registration is recognised without waiting for it.
    keys = rules.lock_keys("tenant-a", Node.registration, ["u-a", "u-b"])
    async with platform.db("referral").engine.connect() as holder:
        await holder.execute(
            text(
                "SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) "
                "FROM unnest(CAST(:keys AS text[])) AS k"
            ),
            {"keys": keys},
        )
        again = await asyncio.wait_for(deliver(platform, [first]), timeout=8)
        assert again.jobs_complete == 1 and again.jobs_failed == 0
        await holder.rollback()

    assert await registration_bindings(platform) == {("tenant-a", "u-b"): "u-a"}
    history = await rows(platform, "SELECT action FROM binding_history WHERE invitee_id = 'u-b'")
    assert [r.action for r in history] == ["bound"]


async def test_only_the_same_event_of_the_same_tenant_counts_as_applied(
    platform: Platform,
) -> None:
    code_a = await invite_code(platform, "u-a")
    code_c = await invite_code(platform, "u-c")
    code_other = await invite_code(platform, "u-x", tenant="tenant-b")
    await deliver(platform, [registration(platform, "u-b", code_a, "evt-reg-b")])
    worker = await deliver(
        platform,
        [
            # The same user with another registration event: not skipped, and still refused
            # (the registration inviter is bound once).
            registration(platform, "u-b", code_c, "evt-reg-b-again"),
            # The same user id and event id in another tenant: a registration of its own.
            registration(platform, "u-b", code_other, "evt-reg-b", tenant="tenant-b"),
        ],
    )
    assert worker.jobs_complete == 1 and worker.jobs_failed == 0
    assert await registration_bindings(platform) == {
        ("tenant-a", "u-b"): "u-a",
        ("tenant-b", "u-b"): "u-x",
    }
    completions = await rows(
        platform,
        "SELECT tenant_id, event_id FROM node_completions WHERE user_id = 'u-b' "
        "AND node = 'registration' ORDER BY tenant_id",
    )
    # The first completion's event is kept.
    assert [(r.tenant_id, r.event_id) for r in completions] == [
        ("tenant-a", "evt-reg-b"),
        ("tenant-b", "evt-reg-b"),
    ]


async def test_a_delivery_bigger_than_its_budget_ends_over_several_tries(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No time at all: each try applies one chunk of registrations (at least one is always
    # applied), commits it and hands the rest to the next try.
    monkeypatch.setattr(service_worker, "DELIVERY_BUDGET_SECONDS", 0.0)
    code = await invite_code(platform, "u-a")
    count = 2 * REGISTRATIONS_PER_TRANSACTION + 3
    payloads = [registration(platform, f"u-{i}", code, f"evt-reg-{i}") for i in range(count)]
    payloads.append({"tenant_id": "tenant-a", "user_id": "u-broken"})  # not a registration
    worker = await deliver(platform, payloads)

    # Two tries applied a chunk each, the third found the last three registrations and the
    # broken message: they were applied one by one and the delivery failed for the broken
    # one alone (the outbox sweep sends such a delivery again, where the applied
    # registrations are skipped, until it becomes a dead letter).
    assert worker.jobs_retried == 2
    assert worker.jobs_failed == 1 and worker.jobs_complete == 0
    assert await registration_bindings(platform) == {
        ("tenant-a", f"u-{i}"): "u-a" for i in range(count)
    }
    history = await rows(platform, "SELECT invitee_id FROM binding_history")
    assert sorted(r.invitee_id for r in history) == sorted(f"u-{i}" for i in range(count))

    # Sent again whole: nothing applied twice, and it fails for the broken message alone.
    again = await deliver(platform, payloads)
    assert again.jobs_retried == 0 and again.jobs_failed == 1
    assert len(await rows(platform, "SELECT 1 FROM binding_history")) == count
