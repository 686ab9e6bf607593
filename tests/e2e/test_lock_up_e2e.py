"""SPEC §3.3 both ways over real HTTP with all six processes running: a reward issued only
after the lock-up waits Locked; a reward issued at once ("issue after lock-up = no") is
Issued at once and its lock is still checked at expiry by the reward worker's reconciler,
which asks the activity service about the user's position and flags a broken lock."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from service_kit.db import Database
from tests.e2e.campaign import OPERATOR_PERMISSIONS, poll, publish_campaign, reward_records
from tests.e2e.conftest import RunningPlatform
from tests.infra import Infra

pytestmark = pytest.mark.e2e
LOCK = {"amount": "10000", "currency": "HKD", "days": 30}


async def _expire_locks(url: str, numbers: list[str], now: datetime) -> None:
    """The lock period is days long: move these records' lock period back so it ended a
    minute ago, as the passing of 30 days would (nothing else about them changes)."""
    db = Database(url)
    try:
        async with db.engine.begin() as conn:
            await conn.execute(
                text(
                    "UPDATE reward_records SET lock_started_at = :start, "
                    "lock_expires_at = :end WHERE number = ANY(:numbers)"
                ),
                {
                    "start": now - timedelta(days=30, minutes=1),
                    "end": now - timedelta(minutes=1),
                    "numbers": numbers,
                },
            )
    finally:
        await db.dispose()


def test_lock_up_both_ways(running_platform: RunningPlatform, infra: Infra) -> None:
    p = running_platform
    op = p.token("operator", sub="ops-1", permissions=OPERATOR_PERMISSIONS)
    backend = p.token("service", sub="broker-backend")
    http = httpx.Client(timeout=10)
    now = datetime.now(UTC)

    def rules(prize_id: str) -> list[dict[str, Any]]:
        return [
            # Issued at once; the lock is checked at expiry all the same.
            {
                "task": "register",
                "prize_id": prize_id,
                "lock_up": {**LOCK, "issue_after_lock": False},
            },
            # Issued only after the lock-up: waits Locked.
            {
                "task": "open_account",
                "prize_id": prize_id,
                "lock_up": {**LOCK, "issue_after_lock": True},
            },
        ]

    _, activity = publish_campaign(
        http,
        p.urls,
        op,
        prize={
            "type": "coupon",
            "name": "Commission-free card",
            "coupon_type": "commission_free",
            "title": {"en": "Commission-free card"},
            "validity": {"days_from_issue": 90},
        },
        name={"en": "Open an account, keep HKD 10k"},
        rules=rules,
        started_days_ago=60,
    )

    def event(event_id: str, kind: str, user: str, at: datetime, **extra: Any) -> None:
        body = {
            "event_id": event_id,
            "type": kind,
            "user_id": user,
            "app_id": "broker-app",
            "occurred_at": at.isoformat(),
            **extra,
        }
        answer = http.post(f"{p.urls['activity']}/v1/events", headers=backend, json=body)
        assert answer.status_code == 202, answer.text

    money = {"amount": "20000", "currency": "HKD"}
    for user in ("keeper", "spender"):
        event(f"reg-{user}", "user.registered", user, now - timedelta(days=40))
        event(f"dep-{user}", "cash.deposited", user, now - timedelta(days=40), **money)
    event("open-keeper", "account.opened", "keeper", now - timedelta(days=40))
    # The spender takes most of it out inside what will be the lock period.
    event(
        "wd-spender",
        "cash.withdrawn",
        "spender",
        now - timedelta(days=15),
        amount="15000",
        currency="HKD",
    )

    def records() -> list[dict[str, Any]]:
        return reward_records(http, p.urls, op, activity)

    rows = poll(
        records,
        lambda rs: len(rs) == 3 and all(r["status"] != "pending" for r in rs),
        timeout=45.0,
        every=0.3,
    )
    by_key = {(r["user_id"], r["task"]): r for r in rows}
    assert len(by_key) == 3, p.log_tail()
    waiting = by_key[("keeper", "open_account")]
    assert (waiting["status"], waiting["lock_issue_after"]) == ("locked", True)
    at_once = [by_key[("keeper", "register")], by_key[("spender", "register")]]
    for row in at_once:
        assert (row["status"], row["lock_issue_after"], row["lock_result"]) == (
            "issued",
            False,
            None,
        )
        issued_at = datetime.fromisoformat(row["issued_at"])
        assert datetime.fromisoformat(row["lock_expires_at"]) == issued_at + timedelta(days=30)

    # 锁仓中 counts all three; Issued the two issued at once; All each record once.
    stats = http.get(f"{p.urls['activity']}/v1/activities/{activity['id']}/stats", headers=op)
    assert stats.status_code == 200, stats.text
    rewards = stats.json()["rewards"]
    assert (rewards["locked"], rewards["issued"], rewards["all"]) == (3, 2, 3), rewards

    # The lock periods of the two rewards issued at once end; the reconciler (cron) checks
    # them against the activity service's positions.
    reward_db = infra.db_url("reward", f"_e2e{os.getpid()}")
    asyncio.run(_expire_locks(reward_db, [r["number"] for r in at_once], datetime.now(UTC)))

    def settled() -> list[dict[str, Any]]:
        return [r for r in records() if r["task"] == "register" and r["lock_result"]]

    done = poll(settled, lambda rs: len(rs) == 2, timeout=45.0, every=0.3)
    verdicts = {r["user_id"]: (r["status"], r["lock_result"]) for r in done}
    assert verdicts == {"keeper": ("issued", "held"), "spender": ("issued", "broken")}, p.log_tail()
    flagged = http.get(
        f"{p.urls['reward']}/v1/reward-records", headers=op, params={"lock": "broken"}
    ).json()["items"]
    assert [r["user_id"] for r in flagged] == ["spender"]
    assert flagged[0]["lock_detail"].startswith("lock_broken")
    rewards = http.get(
        f"{p.urls['activity']}/v1/activities/{activity['id']}/stats", headers=op
    ).json()["rewards"]
    assert (rewards["locked"], rewards["issued"], rewards["all"]) == (1, 2, 3), rewards
