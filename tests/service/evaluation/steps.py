"""Steps shared by the evaluation service tests."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select

from activity_service.db import OutboxMessage
from activity_service.evaluation.models import Grant
from contracts import jobs
from contracts.payloads import grants_of_message
from tests.service.flows import create_coupon_prize
from tests.service.harness import Platform

WINDOW = {"starts_at": "2026-12-01T00:00:00+08:00", "ends_at": "2027-01-01T00:00:00+08:00"}
APP = "broker-app"


async def prizes(platform: Platform, n: int, tenant: str = "tenant-a") -> list[str]:
    return [(await create_coupon_prize(platform, tenant))["id"] for _ in range(n)]


async def activity(
    platform: Platform, body: dict[str, Any], tenant: str = "tenant-a", publish: bool = True
) -> dict[str, Any]:
    full = {"name": {"en": f"Campaign {uuid.uuid4().hex[:6]}"}, **WINDOW, **body}
    created = await platform.activity.post(
        "/v1/activities", json=full, headers=platform.operator(tenant)
    )
    assert created.status_code == 201, created.text
    if not publish:
        return created.json()
    published = await platform.activity.post(
        f"/v1/activities/{created.json()['id']}/publish", headers=platform.operator(tenant)
    )
    assert published.status_code == 200, published.text
    return published.json()


def event(kind: str, user: str, when: str, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": fields.pop("event_id", f"{kind}-{user}-{uuid.uuid4().hex[:10]}"),
        "type": kind,
        "user_id": user,
        "app_id": fields.pop("app_id", APP),
        "occurred_at": when,
        **fields,
    }


def money(kind: str, user: str, when: str, amount: str, currency: str = "HKD") -> dict[str, Any]:
    return event(kind, user, when, amount=amount, currency=currency)


async def post(platform: Platform, *events: dict[str, Any], tenant: str = "tenant-a") -> None:
    response = await platform.activity.post(
        "/v1/events/batch", json={"events": list(events)}, headers=platform.service(tenant)
    )
    assert response.status_code == 200, response.text
    assert response.json()["rejected"] == 0, response.text


async def grants(platform: Platform, activity_id: str) -> list[Grant]:
    async with platform.db("activity").session() as session:
        rows = await session.scalars(
            select(Grant)
            .where(Grant.activity_id == uuid.UUID(activity_id))
            .order_by(Grant.created_at, Grant.grant_key)
        )
        return list(rows.all())


async def announced(platform: Platform) -> dict[str, list[dict[str, Any]]]:
    """The ``reward.create_from_grant`` payloads in the activity service's outbox by grant
    key, as the reward service reads them (a daily run's messages carry many grants each)."""
    async with platform.db("activity").session() as session:
        payloads = await session.scalars(
            select(OutboxMessage.payload)
            .where(OutboxMessage.job_name == jobs.REWARD_CREATE_FROM_GRANT)
            .order_by(OutboxMessage.created_at, OutboxMessage.id)
        )
        found: dict[str, list[dict[str, Any]]] = {}
        for payload in payloads.all():
            for grant in grants_of_message(payload):
                found.setdefault(grant["grant_key"], []).append(grant)
    return found


def table(rows: list[Grant], names: dict[str, str] | None = None) -> list[tuple[str, str, str]]:
    """(user, rule, prize name) sorted: what a hand-computed table compares with."""
    names = names or {}
    return sorted((g.user_id, g.rule_id, names.get(str(g.prize_id), str(g.prize_id))) for g in rows)


async def explain(platform: Platform, activity_id: str, user_id: str) -> dict[str, Any]:
    response = await platform.activity.get(
        f"/v1/activities/{activity_id}/explain",
        params={"user_id": user_id},
        headers=platform.operator(),
    )
    assert response.status_code == 200, response.text
    return response.json()


async def invite_code(platform: Platform, user: str) -> str:
    response = await platform.referral.get("/v1/me/invite-code", headers=platform.user(user))
    assert response.status_code == 200, response.text
    return str(response.json()["code"])


async def register_invitees(
    platform: Platform, inviter: str, invitees: list[str], when: str = "2026-12-02T10:00:00+08:00"
) -> None:
    """Each invitee registers with ``inviter``'s invite code, the platform drained after each."""
    code = await invite_code(platform, inviter)
    for invitee in invitees:
        await post(platform, event("user.registered", invitee, when, invite_code=code))
        await platform.drain()


def invitee_prize_referral(p_inviter: str, p_invitee: str, **extra: Any) -> dict[str, Any]:
    """A marketing referral activity: an invitee who registers earns ``p_invitee`` and the
    inviter ``p_inviter``, at most twice per inviter; ``extra`` adds to the configuration."""
    return {
        "kind": "referral",
        "attribute": "marketing",
        "reward_type": "fixed",
        "rules": [
            {"id": "reg", "task": "register", "prize_id": p_inviter, "invitee_prize_id": p_invitee}
        ],
        "prize_limits": [{"prize_id": p_inviter, "max_per_user": 2}],
        **extra,
    }
