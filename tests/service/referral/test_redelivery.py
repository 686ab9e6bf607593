"""Registrations delivered again (a delivery sent again by the outbox sweep, or a try that
stopped at its time budget): the applied ones are skipped in one query, without the bind's
locks, and a delivery bigger than its budget is finished over several tries."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from sqlalchemy import text

from contracts import jobs
from contracts.payloads import Node, UserRegistered
from referral_service.bindings import rules
from referral_service.worker import create_worker
from service_kit import worker as service_worker
from service_kit.queue import enqueue
from tests.service.harness import Platform, worker_run_relay_off
from tests.service.referral.steps import invite_code


def _registration(
    platform: Platform, user: str, code: str | None, event_id: str, tenant: str = "tenant-a"
) -> dict[str, Any]:
    fact = UserRegistered(
        tenant_id=tenant,
        app_id="broker-app",
        user_id=user,
        invite_code=code,
        registered_at=platform.clock.now(),
        event_id=event_id,
    )
    return fact.model_dump(mode="json")


async def _deliver(platform: Platform, payloads: list[dict[str, Any]]) -> Any:
    """One delivery carrying ``payloads``, run by a real referral worker (burst); returns
    the worker, whose counters tell how many tries the delivery took."""
    await enqueue(
        platform.apps["referral"].state.arq,
        platform.settings["referral"].queue_prefix,
        "referral",
        jobs.REFERRAL_USER_REGISTERED,
        payloads,  # type: ignore[arg-type]  # a delivery is a list of payloads
        f"batch:{uuid.uuid4().hex}",
    )
    worker = create_worker(
        settings=platform.settings["referral"],  # type: ignore[arg-type]
        clock=platform.clock,
        burst=True,
    )
    worker_run_relay_off(worker)
    try:
        await worker.async_run()
    finally:
        await worker.close()
    return worker


async def _rows(platform: Platform, sql: str) -> list[Any]:
    async with platform.db("referral").engine.connect() as conn:
        return list((await conn.execute(text(sql))).all())


async def _bindings(platform: Platform) -> dict[tuple[str, str], str]:
    rows = await _rows(
        platform,
        "SELECT tenant_id, invitee_id, inviter_id FROM bindings WHERE node = 'registration'",
    )
    return {(r.tenant_id, r.invitee_id): r.inviter_id for r in rows}


async def test_an_applied_registration_delivered_again_takes_no_lock(platform: Platform) -> None:
    code = await invite_code(platform, "u-a")
    first = _registration(platform, "u-b", code, "evt-reg-b")
    assert (await _deliver(platform, [first])).jobs_complete == 1
    assert await _bindings(platform) == {("tenant-a", "u-b"): "u-a"}

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
        again = await asyncio.wait_for(_deliver(platform, [first]), timeout=8)
        assert again.jobs_complete == 1 and again.jobs_failed == 0
        await holder.rollback()

    assert await _bindings(platform) == {("tenant-a", "u-b"): "u-a"}
    history = await _rows(platform, "SELECT action FROM binding_history WHERE invitee_id = 'u-b'")
    assert [r.action for r in history] == ["bound"]


async def test_only_the_same_event_of_the_same_tenant_counts_as_applied(
    platform: Platform,
) -> None:
    code_a = await invite_code(platform, "u-a")
    code_c = await invite_code(platform, "u-c")
    code_other = await invite_code(platform, "u-x", tenant="tenant-b")
    await _deliver(platform, [_registration(platform, "u-b", code_a, "evt-reg-b")])
    worker = await _deliver(
        platform,
        [
            # The same user with another registration event: not skipped, and still refused
            # (the registration inviter is bound once).
            _registration(platform, "u-b", code_c, "evt-reg-b-again"),
            # The same user id and event id in another tenant: a registration of its own.
            _registration(platform, "u-b", code_other, "evt-reg-b", tenant="tenant-b"),
        ],
    )
    assert worker.jobs_complete == 1 and worker.jobs_failed == 0
    assert await _bindings(platform) == {
        ("tenant-a", "u-b"): "u-a",
        ("tenant-b", "u-b"): "u-x",
    }
    completions = await _rows(
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
    # No time at all: each try binds one registration (at least one is always handled),
    # commits it and hands the rest to the next try.
    monkeypatch.setattr(service_worker, "DELIVERY_BUDGET_SECONDS", 0.0)
    code = await invite_code(platform, "u-a")
    payloads = [_registration(platform, f"u-{i}", code, f"evt-reg-{i}") for i in range(4)]
    payloads.append({"tenant_id": "tenant-a", "user_id": "u-broken"})  # not a registration
    worker = await _deliver(platform, payloads)

    # Four tries bound one registration each, the fifth found the broken message alone and
    # failed the delivery for it (the outbox sweep sends such a delivery again, where the
    # four applied registrations are skipped, until it becomes a dead letter).
    assert worker.jobs_retried == 4
    assert worker.jobs_failed == 1 and worker.jobs_complete == 0
    assert await _bindings(platform) == {("tenant-a", f"u-{i}"): "u-a" for i in range(4)}
    history = await _rows(platform, "SELECT invitee_id FROM binding_history")
    assert sorted(r.invitee_id for r in history) == [f"u-{i}" for i in range(4)]

    # Sent again whole: nothing applied twice, and it fails for the broken message alone.
    again = await _deliver(platform, payloads)
    assert again.jobs_retried == 0 and again.jobs_failed == 1
    assert len(await _rows(platform, "SELECT 1 FROM binding_history")) == 4
