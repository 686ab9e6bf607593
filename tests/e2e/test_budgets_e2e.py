"""SPEC §6 budgets over real HTTP with all six processes running: registrations arriving
together race for an activity's budget and a prize's total quantity; the database lets
exactly what they cover through, the stats show what is left and explain says why the
others got nothing."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import RunningPlatform

pytestmark = pytest.mark.e2e
OPERATOR_PERMISSIONS = ("ActivityCenterFull", "RightsSystemFull")


def _poll(fetch: Any, done: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if done(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.3)


def test_budget_and_prize_total_hold_under_a_burst(running_platform: RunningPlatform) -> None:
    p = running_platform
    op = p.token("operator", sub="ops-1", permissions=OPERATOR_PERMISSIONS)
    backend = p.token("service", sub="broker-backend")
    http = httpx.Client(timeout=10)
    now = datetime.now(UTC)

    def prize(name: str, cost: str) -> str:
        created = http.post(
            f"{p.urls['reward']}/v1/prizes",
            headers=op,
            json={
                "type": "coupon",
                "name": name,
                "coupon_type": "cash_voucher",
                "title": {"en": name},
                "validity": {"days_from_issue": 30},
                "cost_amount": cost,
                "cost_currency": "HKD",
            },
        )
        assert created.status_code == 201, created.text
        return str(created.json()["id"])

    voucher, card = prize("HKD 100 voucher", "100"), prize("Data card", "10")
    created = http.post(
        f"{p.urls['activity']}/v1/activities",
        headers=op,
        json={
            "kind": "basic",
            "name": {"en": "Welcome, while the budget lasts"},
            "starts_at": (now - timedelta(days=1)).isoformat(),
            "ends_at": (now + timedelta(days=30)).isoformat(),
            "rules": [
                {"id": "v", "task": "register", "prize_id": voucher},
                {"id": "c", "task": "open_account", "prize_id": card},
            ],
            "budget": {"amount": "350"},
            "prize_totals": [{"prize_id": card, "total_quantity": 2}],
        },
    )
    assert created.status_code == 201, created.text
    activity = created.json()
    published = http.post(
        f"{p.urls['activity']}/v1/activities/{activity['id']}/publish", headers=op
    )
    assert published.status_code == 200, published.text

    users = [f"burst-{n}" for n in range(8)]
    events = [
        {
            "event_id": f"{kind}-{user}",
            "type": kind,
            "user_id": user,
            "app_id": "broker-app",
            "occurred_at": now.isoformat(),
        }
        for user in users
        for kind in ("user.registered", "account.opened")
    ]
    batch = http.post(
        f"{p.urls['activity']}/v1/events/batch", headers=backend, json={"events": events}
    )
    assert batch.status_code == 200 and batch.json()["rejected"] == 0, batch.text

    def records() -> list[dict[str, Any]]:
        answer = http.get(
            f"{p.urls['reward']}/v1/reward-records",
            headers=op,
            params={"activity_code": activity["activity_code"], "limit": 100},
        )
        return answer.json()["items"]  # type: ignore[no-any-return]

    def stats() -> dict[str, Any]:
        answer = http.get(f"{p.urls['activity']}/v1/activities/{activity['id']}/stats", headers=op)
        assert answer.status_code == 200, answer.text
        return answer.json()  # type: ignore[no-any-return]

    def decided() -> list[dict[str, Any]]:
        """Every user's latest outcome for both rules, once all are evaluated."""
        rows = []
        for user in users:
            why = http.get(
                f"{p.urls['activity']}/v1/activities/{activity['id']}/explain",
                headers=op,
                params={"user_id": user},
            ).json()
            rows.extend(why["outcomes"])
        return rows

    outcomes = _poll(decided, lambda rows: len(rows) == 2 * len(users))
    assert len(outcomes) == 2 * len(users), p.log_tail()
    by_outcome: dict[str, int] = {}
    for row in outcomes:
        by_outcome[row["outcome"]] = by_outcome.get(row["outcome"], 0) + 1
    # Whatever order the burst is evaluated in: the two data cards of the total, and three
    # vouchers (300 of the 350; a fourth would need 400 — a card always fits, 10 each).
    assert by_outcome == {"granted": 5, "budget_exhausted": 5, "quantity_exhausted": 6}, by_outcome
    left = stats()
    assert left["budget"] == {
        "currency": "HKD",
        "amount": "350",
        "spent": "320.000000",
        "remaining": "30.000000",
    }
    assert left["prize_totals"] == [
        {"prize_id": card, "total_quantity": 2, "granted": 2, "remaining": 0}
    ]
    rows = _poll(records, lambda rs: len(rs) == 5 and all(r["status"] == "issued" for r in rs))
    assert sorted(r["prize_id"] == voucher for r in rows) == [False, False, True, True, True], (
        p.log_tail()
    )
