"""Dry-runs of every kind: a running activity dry-run over its own window grants what the
evaluation granted (referral with invitee prizes, caps and totals; basic with a budget),
a draft regular tiered referral activity (ranges, bonus, one regular activity at a time,
no inviter), team and non-standard activities refused with the reason, and the bad paths.
Nothing is written in any service."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import text

from activity_platform.embedded import free_port
from activity_service.evaluation import dry_run_decisions
from activity_service.evaluation.dry_run import dry_run_activity
from activity_service.evaluation.dry_run_decisions import CHUNK_SIZE
from activity_service.evaluation.engine import Window
from service_kit.errors import UpstreamUnavailable
from service_kit.http import ServiceClient
from tests.service.evaluation.steps import (
    WINDOW,
    activity,
    event,
    grants,
    invitee_prize_referral,
    post,
    prizes,
    register_invitees,
)
from tests.service.evaluation.test_budgets import costed_prize
from tests.service.harness import Platform
from tests.service.teams.steps import members, team_activity

AFTER = datetime.fromisoformat("2027-01-05T12:00:00+08:00")


async def dry_run(platform: Platform, activity_id: str, **body: Any) -> tuple[int, Any]:
    headers = body.pop("headers", None) or platform.operator()
    response = await platform.activity.post(
        f"/v1/activities/{activity_id}/dry-run", json={**WINDOW, **body}, headers=headers
    )
    return response.status_code, response.json()


async def every_item(platform: Platform, activity_id: str, show: str) -> list[dict[str, Any]]:
    """Every page of one list (pages of two, following the cursor)."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        status, body = await dry_run(platform, activity_id, show=show, limit=2, cursor=cursor)
        assert status == 200, body
        items.extend(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return items


async def written(platform: Platform) -> dict[str, int]:
    """Rows a dry-run must never add, in all three services."""
    tables = {
        "activity": (
            "grants",
            "evaluation_outcomes",
            "outbox_messages",
            "referral_qualifications",
            "referral_counters",
            "regular_participations",
            "prize_cap_counters",
            "prize_total_counters",
            "activity_budget_spend",
        ),
        "referral": ("bindings", "binding_history", "outbox_messages", "idempotency_keys"),
        "reward": ("reward_records", "outbox_messages"),
    }
    counts = {}
    for service, names in tables.items():
        async with platform.db(service).session() as session:
            for name in names:
                exists = await session.scalar(text("SELECT to_regclass(:t)"), {"t": name})
                if exists is None:
                    continue
                counts[f"{service}.{name}"] = int(
                    await session.scalar(text(f"SELECT count(*) FROM {name}")) or 0
                )
    return counts


def key(item: dict[str, Any]) -> tuple[str, str, str, str]:
    return (item["user_id"], item["rule_id"], item["prize_id"], item["counterpart_id"] or "-")


async def test_a_running_referral_activity_dry_runs_to_what_it_granted(
    platform: Platform,
) -> None:
    p_inviter, p_invitee = await prizes(platform, 2)
    totals = [{"prize_id": p_invitee, "total_quantity": 3}]
    act = await activity(
        platform, invitee_prize_referral(p_inviter, p_invitee, prize_totals=totals)
    )
    await register_invitees(platform, "inv", ["a", "b", "c"])
    await register_invitees(platform, "inv2", ["d"], when="2026-12-03T10:00:00+08:00")
    await post(platform, event("user.registered", "loner", "2026-12-02T11:00:00+08:00"))
    await platform.drain()
    made = sorted(
        (g.user_id, g.rule_id, str(g.prize_id), g.counterpart_id or "-")
        for g in await grants(platform, act["id"])
    )
    platform.clock.set(AFTER)
    before = await written(platform)

    status, body = await dry_run(platform, act["id"], limit=1000)
    assert status == 200, body
    assert body["kind"] == "referral"
    assert sorted(key(i) for i in body["items"]) == made
    assert len(made) == 6  # a, b, c's prizes; inv twice (cap 2); inv2 for d (d: total 3)
    assert body["users_evaluated"] == 5  # the invitees with events: a, b, c, d, loner
    assert (body["grants_total"], body["users_rewarded"]) == (6, 5)
    assert body["refused"] == {"cap_reached": 1, "no_inviter": 1, "quantity_exhausted": 1}
    assert [(c["limit"], c["prize_id"], c["refused"], c["first_users"]) for c in body["caps"]] == [
        ("per_user_cap", p_inviter, 1, ["inv"]),
        ("total_quantity", p_invitee, 1, ["d"]),
    ]
    refused = await every_item(platform, act["id"], "refused")
    assert sorted((i["user_id"], i["outcome"], i["counterpart_id"]) for i in refused) == [
        ("d", "quantity_exhausted", "inv2"),
        ("inv", "cap_reached", "c"),
        ("loner", "no_inviter", None),
    ]
    granted = await every_item(platform, act["id"], "granted")
    assert sorted(key(i) for i in granted) == made
    roles = {(i["user_id"], i["referral_role"]) for i in granted}
    assert ("inv", "inviter") in roles and ("a", "invitee") in roles
    assert await written(platform) == before


@pytest.mark.parametrize("chunk_size", [CHUNK_SIZE, 2])
async def test_a_draft_tiered_regular_referral_activity(
    platform: Platform, monkeypatch: pytest.MonkeyPatch, chunk_size: int
) -> None:
    # In chunks of two invitees, a chunk's inviters are credited after the next chunk is
    # decided: the same answer as in one chunk.
    monkeypatch.setattr(dry_run_decisions, "CHUNK_SIZE", chunk_size)
    low, high, bonus, other_prize = await prizes(platform, 4)
    # inviter "busy" takes part in another regular activity from 3 December
    other = await activity(
        platform,
        {
            "kind": "referral",
            "attribute": "regular",
            "reward_type": "fixed",
            "rules": [{"id": "open", "task": "open_account", "prize_id": other_prize}],
        },
    )
    await register_invitees(platform, "someone", ["b0"])
    bound = await platform.referral.post(
        "/v1/bindings",
        json={"invitee_id": "b0", "inviter_id": "busy", "node": "account_opening"},
        headers=platform.operator(),
    )
    assert bound.status_code == 201, bound.text
    await platform.drain()
    await post(platform, event("account.opened", "b0", "2026-12-03T10:00:00+08:00"))
    await platform.drain()
    assert [g.user_id for g in await grants(platform, other["id"])] == ["busy"]
    await register_invitees(platform, "busy", ["b1", "b2"], when="2026-12-04T10:00:00+08:00")
    for n, invitee in enumerate(["f1", "f2", "f3", "f4"]):
        await register_invitees(platform, "free", [invitee], when=f"2026-12-0{5 + n}T10:00:00Z")
    draft = await activity(
        platform,
        {
            "kind": "referral",
            "attribute": "regular",
            "reward_type": "tiered",
            "rules": [
                {
                    "id": "r",
                    "task": "register",
                    "tiers": [
                        {
                            "id": "t1",
                            "min_invites": 1,
                            "max_invites": 2,
                            "prize_id": low,
                            "bonus_prize_id": bonus,
                        },
                        {"id": "t2", "min_invites": 3, "max_invites": 3, "prize_id": high},
                    ],
                }
            ],
        },
        publish=False,
    )
    platform.clock.set(AFTER)
    before = await written(platform)
    status, body = await dry_run(platform, draft["id"], limit=1000)
    assert status == 200, body
    names = {low: "low", high: "high", bonus: "bonus"}
    assert [
        (i["user_id"], i["rule_id"], names[i["prize_id"]], i["counterpart_id"])
        for i in body["items"]
    ] == [
        ("free", "r:t1", "low", "f1"),
        ("free", "r:t1:bonus", "bonus", None),
        ("free", "r:t1", "low", "f2"),
        ("free", "r:t2", "high", "f3"),
        # "someone" invited b0 on 2 December, before any other regular activity
        ("someone", "r:t1", "low", "b0"),
        ("someone", "r:t1:bonus", "bonus", None),
    ]
    assert body["refused"] == {"beyond_last_range": 1, "in_other_regular_activity": 2}
    refused = await every_item(platform, draft["id"], "refused")
    assert [(i["user_id"], i["outcome"], i["counterpart_id"]) for i in refused] == [
        ("busy", "in_other_regular_activity", "b1"),
        ("busy", "in_other_regular_activity", "b2"),
        ("free", "beyond_last_range", "f4"),
    ]
    assert body["caps"] == [] and body["budget_spent"] is None
    assert await written(platform) == before


async def test_a_running_basic_activity_with_a_budget_and_a_total(platform: Platform) -> None:
    p100 = await costed_prize(platform, "100")
    p10 = await costed_prize(platform, "10")
    act = await activity(
        platform,
        {
            "kind": "basic",
            "rules": [
                {"id": "r", "task": "register", "prize_id": p100},
                {"id": "o", "task": "open_account", "prize_id": p10},
            ],
            "budget": {"amount": "250"},
            "prize_totals": [{"prize_id": p10, "total_quantity": 1}],
        },
    )
    await post(platform, *(event("user.registered", u, "2026-12-02T10:00:00+08:00") for u in "xyz"))
    await platform.drain()
    await post(platform, *(event("account.opened", u, "2026-12-03T10:00:00+08:00") for u in "xy"))
    await platform.drain()
    made = sorted(
        (g.user_id, g.rule_id, str(g.prize_id), "-") for g in await grants(platform, act["id"])
    )
    assert [m[:2] for m in made] == [("x", "o"), ("x", "r"), ("y", "r")]
    platform.clock.set(AFTER)
    before = await written(platform)
    status, body = await dry_run(platform, act["id"])
    assert status == 200, body
    assert sorted(key(i) for i in body["items"]) == made
    assert body["refused"] == {"budget_exhausted": 1, "quantity_exhausted": 1}
    assert float(body["budget_spent"]) == 210
    assert (float(body["cost_total"]), body["cost_complete"]) == (210, True)
    caps = {c["limit"]: c for c in body["caps"]}
    assert caps["budget"]["prize_id"] is None and caps["budget"]["first_users"] == ["z"]
    assert (float(caps["budget"]["value"]), caps["budget"]["currency"]) == (250, "HKD")
    assert caps["total_quantity"]["prize_id"] == p10
    assert caps["total_quantity"]["first_users"] == ["y"]
    assert await written(platform) == before


async def test_kinds_without_stored_events_and_bad_dry_runs_are_refused(
    platform: Platform,
) -> None:
    (prize,) = await prizes(platform, 1)
    team = await team_activity(platform, prize, publish=False)
    created = await platform.activity.post(
        "/v1/activities",
        json={"kind": "non_standard", "name": {"en": "VIP thanks"}, "cost_type": "rebate"},
        headers=platform.operator(),
    )
    assert created.status_code == 201, created.text
    referral = await activity(
        platform,
        {
            "kind": "referral",
            "attribute": "marketing",
            "reward_type": "fixed",
            "rules": [{"id": "reg", "task": "register", "prize_id": prize}],
        },
    )
    closing = await activity(
        platform,
        {"kind": "basic", "rules": [{"id": "r", "task": "register", "prize_id": prize}]},
    )
    closed = await platform.activity.post(
        f"/v1/activities/{closing['id']}/close", headers=platform.operator()
    )
    assert closed.status_code == 200, closed.text
    platform.clock.set(AFTER)
    got, answer = await dry_run(platform, team["id"])
    assert (got, answer["code"]) == (422, "dry_run_unsupported")
    assert "assists" in answer["detail"]
    got, answer = await dry_run(platform, created.json()["id"])
    assert (got, answer["code"]) == (422, "dry_run_unsupported")
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"starts_at": "2026-08-01T00:00:00+08:00"}, 422, "period_too_long"),
        ({"ends_at": "2027-02-01T00:00:00+08:00"}, 422, "period_not_over"),
        ({"show": "everything"}, 422, "validation_error"),
        ({"headers": platform.operator("tenant-b")}, 404, "activity_not_found"),
        ({"headers": platform.operator(permissions=[])}, 403, "forbidden"),
        ({"headers": platform.service()}, 403, "forbidden"),
    ]
    for body, status, code in cases:
        got, answer = await dry_run(platform, referral["id"], **body)
        assert got == status, (body, answer)
        if status != 403:
            assert answer["code"] == code, answer
    got, answer = await dry_run(platform, str(uuid.uuid4()))
    assert (got, answer["code"]) == (404, "activity_not_found")
    got, answer = await dry_run(platform, closing["id"])
    assert (got, answer["code"]) == (409, "activity_closed")


@pytest.mark.parametrize("chunk_size", [CHUNK_SIZE, 1])
async def test_a_referral_dry_run_needs_the_referral_service(
    platform: Platform, monkeypatch: pytest.MonkeyPatch, chunk_size: int
) -> None:
    monkeypatch.setattr(dry_run_decisions, "CHUNK_SIZE", chunk_size)
    (prize,) = await prizes(platform, 1)
    act = await activity(
        platform,
        {
            "kind": "referral",
            "attribute": "marketing",
            "reward_type": "fixed",
            "rules": [{"id": "reg", "task": "register", "prize_id": prize}],
        },
        publish=False,
    )
    await register_invitees(platform, "inv", ["a", "b", "c"])
    platform.clock.set(AFTER)
    settings = platform.settings["activity"]
    running = asyncio.all_tasks()
    http = ServiceClient(settings, retries=1)
    try:
        with pytest.raises(UpstreamUnavailable):
            await dry_run_activity(
                platform.db("activity"),
                http,
                settings.reward_url,
                f"http://127.0.0.1:{free_port()}",
                "tenant-a",
                uuid.UUID(act["id"]),
                Window(
                    datetime.fromisoformat(WINDOW["starts_at"]),
                    datetime.fromisoformat(WINDOW["ends_at"]),
                ),
                100,
                AFTER,
            )
        # no read or question of a later chunk is left running
        assert not [t for t in asyncio.all_tasks() - running if not t.done()]
    finally:
        await http.aclose()


async def test_segment_and_new_user_eligibility_of_a_basic_draft(platform: Platform) -> None:
    gift, other = await prizes(platform, 2)
    # u1 earns a new-user reward elsewhere on 2 December, before opening an account
    await activity(
        platform,
        {
            "kind": "basic",
            "attribute": "new_user",
            "rules": [{"id": "r", "task": "register", "prize_id": other}],
        },
    )
    await post(platform, event("user.registered", "u1", "2026-12-02T10:00:00+08:00"))
    await platform.drain()
    segment = await members(platform, "openers", ["u1", "u2"])
    draft = await activity(
        platform,
        {
            "kind": "basic",
            "attribute": "new_user",
            "segment_id": segment,
            "segment_refresh": "5m",
            "rules": [{"id": "o", "task": "open_account", "prize_id": gift}],
        },
        publish=False,
    )
    await post(
        platform,
        *(event("account.opened", u, "2026-12-03T10:00:00+08:00") for u in ("u1", "u2", "u3")),
    )
    await platform.drain()
    platform.clock.set(AFTER)
    status, body = await dry_run(platform, draft["id"])
    assert status == 200, body
    assert [(i["user_id"], i["rule_id"]) for i in body["items"]] == [("u2", "o")]
    assert body["refused"] == {"not_in_segment": 1, "not_new_user": 1}
    refused = await every_item(platform, draft["id"], "refused")
    assert [(i["user_id"], i["outcome"]) for i in refused] == [
        ("u1", "not_new_user"),
        ("u3", "not_in_segment"),
    ]
