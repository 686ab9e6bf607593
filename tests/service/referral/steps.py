"""Steps shared by the referral service tests."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import text

from contracts import jobs
from contracts.payloads import Node, NodeCompleted, UserRegistered
from service_kit.outbox.bundles import items_of
from service_kit.queue import enqueue
from tests.service.harness import Platform

READ_ONLY = ["ActivityCenterRead"]


async def invite_code(platform: Platform, user: str, **kw: Any) -> str:
    response = await platform.referral.get("/v1/me/invite-code", headers=platform.user(user, **kw))
    assert response.status_code == 200, response.text
    return str(response.json()["code"])


async def self_bind(platform: Platform, user: str, code: str, **kw: Any) -> httpx.Response:
    return await platform.referral.post(
        "/v1/me/binding", json={"invite_code": code}, headers=platform.user(user, **kw)
    )


async def op_bind(
    platform: Platform,
    invitee: str,
    inviter: str,
    node: str = "registration",
    tenant: str = "tenant-a",
    **body: Any,
) -> httpx.Response:
    return await platform.referral.post(
        "/v1/bindings",
        json={"invitee_id": invitee, "inviter_id": inviter, "node": node, **body},
        headers=platform.operator(tenant),
    )


async def op_change(
    platform: Platform, invitee: str, node: str, inviter: str, tenant: str = "tenant-a"
) -> httpx.Response:
    return await platform.referral.put(
        f"/v1/bindings/{invitee}/{node}",
        json={"inviter_id": inviter},
        headers=platform.operator(tenant),
    )


async def chain(platform: Platform, users: list[str]) -> None:
    """users[i+1] is invited by users[i] at registration."""
    for inviter, invitee in zip(users, users[1:], strict=False):
        response = await op_bind(platform, invitee, inviter)
        assert response.status_code == 201, response.text


async def _enqueue_referral(
    platform: Platform, job: str, payload: dict[str, Any], job_id: str
) -> None:
    await enqueue(
        platform.apps["referral"].state.arq,
        platform.settings["referral"].queue_prefix,
        "referral",
        job,
        payload,
        job_id,
    )


async def complete(
    platform: Platform,
    user: str,
    node: Node,
    at: datetime | None = None,
    event_id: str | None = None,
    tenant: str = "tenant-a",
) -> None:
    """activity_service's fact that a user completed a node, run by the referral worker."""
    at = at or platform.clock.now()
    event_id = event_id or f"evt-{user}-{node.value}"
    if node is Node.registration:
        fact: Any = UserRegistered(
            tenant_id=tenant, app_id="broker-app", user_id=user, registered_at=at, event_id=event_id
        )
        job = jobs.REFERRAL_USER_REGISTERED
    else:
        fact = NodeCompleted(
            tenant_id=tenant, user_id=user, node=node, completed_at=at, event_id=event_id
        )
        job = jobs.REFERRAL_NODE_COMPLETED
    # arq remembers job ids (results kept an hour, outside the test's key prefix): a fresh id
    # per call, so a job is never silently skipped as a duplicate of an earlier test's.
    await _enqueue_referral(platform, job, fact.model_dump(mode="json"), uuid.uuid4().hex)
    await platform.run_queued_jobs()


async def register_with_code(
    platform: Platform, user: str, code: str, event_id: str, at: datetime | None = None
) -> None:
    fact = UserRegistered(
        tenant_id="tenant-a",
        app_id="broker-app",
        user_id=user,
        invite_code=code,
        registered_at=at or platform.clock.now(),
        event_id=event_id,
    )
    await _enqueue_referral(
        platform, jobs.REFERRAL_USER_REGISTERED, fact.model_dump(mode="json"), uuid.uuid4().hex
    )
    await platform.run_queued_jobs()


async def outbox(platform: Platform) -> list[dict[str, Any]]:
    async with platform.db("referral").engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT job_name, queue, payload FROM outbox_messages ORDER BY created_at, id")
        )
        return [
            {"job_name": r.job_name, "queue": r.queue, **item}
            for r in rows.mappings().all()
            for item in items_of(r.payload)
        ]


def registration(
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


async def deliver(platform: Platform, payloads: list[dict[str, Any]]) -> Any:
    """One delivery of registrations, run by a real referral worker (burst)."""
    return await platform.deliver("referral", jobs.REFERRAL_USER_REGISTERED, payloads)


async def rows(platform: Platform, sql: str) -> list[Any]:
    async with platform.db("referral").engine.connect() as conn:
        return list((await conn.execute(text(sql))).all())


async def registration_bindings(platform: Platform) -> dict[tuple[str, str], str]:
    found = await rows(
        platform,
        "SELECT tenant_id, invitee_id, inviter_id FROM bindings WHERE node = 'registration'",
    )
    return {(r.tenant_id, r.invitee_id): r.inviter_id for r in found}
