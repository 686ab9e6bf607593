"""Time-driven rules over real HTTP, in seconds, with sandbox clocks: all six processes run
as `activity-platform dev` starts them (which allows sandbox tenants), and each test drives
its own sandbox tenant's clock (SPEC §1.5, §1.8, §1.9, §3.3, §6)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import RunningPlatform

pytestmark = pytest.mark.e2e
PERMISSIONS = ("ActivityCenterFull", "RightsSystemFull")
# Generous: on a busy machine a first request to a process just started may be slow.
HTTP = httpx.Client(timeout=60)
DEC = {"starts_at": "2026-12-01T00:00:00+08:00", "ends_at": "2027-01-01T00:00:00+08:00"}


class Sandbox:
    """One sandbox tenant of the running platform, created with its clock at ``starts_at``."""

    def __init__(self, platform: RunningPlatform, starts_at: str) -> None:
        self.tenant = f"sbx-{uuid.uuid4().hex[:10]}"
        self.urls = platform.urls
        self.op = platform.token("operator", tenant=self.tenant, permissions=PERMISSIONS)
        self.backend = platform.token("service", tenant=self.tenant, sub="broker-backend")
        self.platform = platform
        created = HTTP.post(
            f"{self.urls['activity']}/v1/sandbox", json={"starts_at": starts_at}, headers=self.op
        )
        assert created.status_code == 201, created.text

    def user(self, sub: str) -> dict[str, str]:
        return self.platform.token("user", tenant=self.tenant, sub=sub, app="broker-app")

    def advance(self, to: str) -> dict[str, Any]:
        deadline = time.monotonic() + 300
        while True:
            response = HTTP.post(
                f"{self.urls['activity']}/v1/sandbox/clock",
                json={"to": to, "wait_seconds": 60},
                headers=self.op,
                timeout=120,
            )
            if response.status_code == 200:
                return dict(response.json())
            assert response.status_code == 202, response.text
            assert time.monotonic() < deadline, self.platform.log_tail()

    def prize(self) -> str:
        response = HTTP.post(
            f"{self.urls['reward']}/v1/prizes",
            json={
                "type": "coupon",
                "name": "market data",
                "coupon_type": "market_data",
                "title": {"en": "Market data card"},
                "validity": {"days_from_issue": 30},
                "instructions": "Activate in Me › Cards",
            },
            headers=self.op,
        )
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def activity(self, body: dict[str, Any]) -> dict[str, Any]:
        created = HTTP.post(
            f"{self.urls['activity']}/v1/activities",
            json={"name": {"en": f"Campaign {uuid.uuid4().hex[:6]}"}, **body},
            headers=self.op,
        )
        assert created.status_code == 201, created.text
        published = HTTP.post(
            f"{self.urls['activity']}/v1/activities/{created.json()['id']}/publish",
            headers=self.op,
        )
        assert published.status_code == 200, published.text
        return dict(published.json())

    def event(self, kind: str, user: str, when: str, **fields: Any) -> None:
        body = {
            "event_id": f"{kind}-{user}-{uuid.uuid4().hex[:10]}",
            "type": kind,
            "user_id": user,
            "app_id": "broker-app",
            "occurred_at": when,
            **fields,
        }
        response = HTTP.post(f"{self.urls['activity']}/v1/events", json=body, headers=self.backend)
        assert response.status_code == 202, response.text

    def deposit(self, user: str, when: str, amount: str) -> None:
        self.event("cash.deposited", user, when, amount=amount, currency="HKD")

    def records(self, user: str) -> list[dict[str, Any]]:
        response = HTTP.get(
            f"{self.urls['reward']}/v1/reward-records", params={"user_id": user}, headers=self.op
        )
        assert response.status_code == 200, response.text
        return list(response.json()["items"])

    def rewarded(self, user: str) -> dict[str, str]:
        return {r["rule_id"]: r["status"] for r in self.records(user)}


def tier(rule_id: str, threshold: str, prize: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": rule_id,
        "task": "deposit_reached",
        "threshold": threshold,
        "currency": "HKD",
        "prize_id": prize,
        **extra,
    }


def test_real_time_tiers_over_four_days(running_platform: RunningPlatform) -> None:
    s = Sandbox(running_platform, "2026-12-01T09:00:00+08:00")
    p = s.prize()
    rules = [tier("d10k", "10000", p), tier("d50k", "50000", p), tier("d100k", "100000", p)]
    s.activity({"kind": "basic", **DEC, "timing": "real_time", "rules": rules})
    s.deposit("u1", "2026-12-01T10:00:00+08:00", "12000")
    s.advance("2026-12-02T09:00:00+08:00")
    assert s.rewarded("u1") == {"d10k": "issued"}
    s.deposit("u1", "2026-12-02T10:00:00+08:00", "40000")
    s.advance("2026-12-03T09:00:00+08:00")
    assert s.rewarded("u1") == {"d10k": "issued", "d50k": "issued"}
    s.advance("2026-12-04T09:00:00+08:00")
    assert len(s.records("u1")) == 2
    s.deposit("u1", "2026-12-04T10:00:00+08:00", "60000")
    s.advance("2026-12-05T09:00:00+08:00")
    assert s.rewarded("u1") == {"d10k": "issued", "d50k": "issued", "d100k": "issued"}


def test_an_at_end_activity_is_settled_at_t_plus_1_with_its_highest_tier(
    running_platform: RunningPlatform,
) -> None:
    s = Sandbox(running_platform, "2026-12-01T09:00:00+08:00")
    p = s.prize()
    window = {"starts_at": "2026-12-01T00:00:00+08:00", "ends_at": "2026-12-03T00:00:00+08:00"}
    rules = [tier("d10k", "10000", p), tier("d50k", "50000", p)]
    s.activity({"kind": "basic", **window, "timing": "at_end", "rules": rules})
    s.deposit("u1", "2026-12-01T10:00:00+08:00", "20000")
    s.advance("2026-12-02T09:00:00+08:00")
    s.deposit("u1", "2026-12-02T10:00:00+08:00", "40000")
    s.advance("2026-12-03T00:20:00+08:00")
    assert s.records("u1") == []
    s.advance("2026-12-03T00:31:00+08:00")
    assert s.rewarded("u1") == {"d50k": "issued"}


def test_a_lock_up_kept_is_issued_and_a_broken_one_cancelled(
    running_platform: RunningPlatform,
) -> None:
    s = Sandbox(running_platform, "2026-12-01T09:00:00+08:00")
    p = s.prize()
    lock = {"lock_up": {"amount": "10000", "currency": "HKD", "days": 30}}
    s.activity(
        {"kind": "basic", **DEC, "timing": "real_time", "rules": [tier("d10k", "10000", p, **lock)]}
    )
    for user in ("keeps", "spends"):
        s.deposit(user, "2026-12-01T10:00:00+08:00", "20000")
    s.advance("2026-12-02T09:00:00+08:00")
    assert s.rewarded("keeps") == {"d10k": "locked"}
    s.advance("2026-12-10T09:00:00+08:00")
    s.event(
        "cash.withdrawn",
        "spends",
        "2026-12-10T10:00:00+08:00",
        amount="15000",
        currency="HKD",
    )
    s.advance("2027-01-02T00:00:00+08:00")
    assert s.rewarded("keeps") == {"d10k": "issued"}
    (cancelled,) = s.records("spends")
    assert cancelled["status"] == "cancelled"
    assert cancelled["failure_reason"].startswith("lock_broken")


def test_a_team_still_forming_fails_at_the_end(running_platform: RunningPlatform) -> None:
    s = Sandbox(running_platform, "2026-12-01T09:00:00+08:00")
    p = s.prize()
    team_activity = s.activity(
        {
            "kind": "team",
            "starts_at": "2026-12-01T00:00:00+08:00",
            "ends_at": "2026-12-02T00:00:00+08:00",
            "form": "assist",
            "helpers_needed": 2,
            "initiation_limit": None,
            "assist_limit": None,
            "helper_rewards": [],
            "initiator_prize_id": p,
            "issuance_form": "automatic",
        }
    )
    started = HTTP.post(
        f"{s.urls['activity']}/v1/activities/{team_activity['id']}/teams",
        json={"nickname": "Ann"},
        headers=s.user("ann"),
    )
    assert started.status_code == 201, started.text
    team_url = f"{s.urls['activity']}/v1/teams/{started.json()['id']}"
    assert HTTP.get(team_url, headers=s.op).json()["status"] == "forming"
    s.advance("2026-12-02T00:00:01+08:00")
    assert HTTP.get(team_url, headers=s.op).json()["status"] == "failed"


def test_a_segment_member_counts_only_after_the_next_refresh(
    running_platform: RunningPlatform,
) -> None:
    s = Sandbox(running_platform, "2026-12-01T10:02:00+08:00")
    p = s.prize()
    segment = HTTP.post(
        f"{s.urls['activity']}/v1/segments", json={"name": "VIP"}, headers=s.op
    ).json()
    s.activity(
        {
            "kind": "basic",
            **DEC,
            "timing": "real_time",
            "segment_id": segment["id"],
            "segment_refresh": "5m",
            "rules": [{"id": "reg", "task": "register", "prize_id": p}],
        }
    )
    uploaded = HTTP.put(
        f"{s.urls['activity']}/v1/segments/{segment['id']}/members",
        json=["early", "late"],
        headers=s.op,
    )
    assert uploaded.status_code == 200, uploaded.text
    s.advance("2026-12-01T10:03:00+08:00")
    s.event("user.registered", "early", "2026-12-01T10:03:00+08:00")
    s.advance("2026-12-01T10:06:00+08:00")
    s.event("user.registered", "late", "2026-12-01T10:06:00+08:00")
    s.advance("2026-12-01T10:07:00+08:00")  # waits for the real-time evaluation's records
    assert s.records("early") == []
    assert s.rewarded("late") == {"reg": "issued"}
