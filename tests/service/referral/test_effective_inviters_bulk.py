"""Effective inviters of many invitees in one question (what a referral dry-run asks):
the node's own inviter, else the registration inviter; unbound invitees answered with nulls;
other tenants' bindings invisible; the list bounded; nothing written."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from tests.service.harness import Platform
from tests.service.referral.steps import READ_ONLY, op_bind

PATH = "/v1/bindings/effective-inviters"


async def ask(platform: Platform, ids: list[Any], headers: dict[str, str]) -> Any:
    return await platform.referral.post(PATH, json={"invitee_ids": ids}, headers=headers)


async def rows(platform: Platform) -> int:
    async with platform.db("referral").session() as session:
        total = 0
        for table in ("bindings", "binding_history", "outbox_messages", "idempotency_keys"):
            total += int(await session.scalar(text(f"SELECT count(*) FROM {table}")) or 0)
        return total


async def test_many_invitees_in_one_question(platform: Platform) -> None:
    assert (await op_bind(platform, "a", "ra")).status_code == 201
    assert (await op_bind(platform, "a", "oa", node="account_opening")).status_code == 201
    assert (await op_bind(platform, "b", "rb")).status_code == 201
    assert (await op_bind(platform, "c", "rc-b", tenant="tenant-b")).status_code == 201
    before = await rows(platform)
    response = await ask(platform, ["a", "b", "c", "a"], platform.service())
    assert response.status_code == 200, response.text
    assert response.json()["items"] == [
        {"invitee_id": "a", "registration": "ra", "account_opening": "oa", "deposit": "ra"},
        {"invitee_id": "b", "registration": "rb", "account_opening": "rb", "deposit": "rb"},
        # "c" is bound in tenant-b only
        {"invitee_id": "c", "registration": None, "account_opening": None, "deposit": None},
    ]
    readonly = await ask(platform, ["c"], platform.operator("tenant-b", permissions=READ_ONLY))
    assert readonly.json()["items"][0]["registration"] == "rc-b"
    assert await rows(platform) == before


async def test_bad_questions_are_refused(platform: Platform) -> None:
    cases: list[tuple[list[Any], int]] = [
        ([], 422),
        ([f"u{n}" for n in range(1001)], 422),
        (["x" * 129], 422),
        ([""], 422),
    ]
    for ids, status in cases:
        response = await ask(platform, ids, platform.service())
        assert response.status_code == status, response.text
    assert (await ask(platform, ["a"], platform.user("a"))).status_code == 403
    no_permission = await ask(platform, ["a"], platform.operator(permissions=[]))
    assert no_permission.status_code == 403
    anonymous = await platform.referral.post(PATH, json={"invitee_ids": ["a"]})
    assert anonymous.status_code == 401
