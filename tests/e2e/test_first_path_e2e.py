"""Step 4 of the foundation over real HTTP with all six processes running."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.e2e.campaign import OPERATOR_PERMISSIONS, poll, publish_campaign, reward_records
from tests.e2e.conftest import RunningPlatform

pytestmark = pytest.mark.e2e


def test_registration_through_invite_code_issues_coupon(running_platform: RunningPlatform) -> None:
    p = running_platform
    op = p.token("operator", sub="ops-1", permissions=OPERATOR_PERMISSIONS)
    backend = p.token("service", sub="broker-backend")
    alice = p.token("user", sub="alice", app="broker-app")
    bob = p.token("user", sub="bob", app="broker-app")
    http = httpx.Client(timeout=10)
    now = datetime.now(UTC)

    _, activity = publish_campaign(http, p.urls, op)

    code = http.get(f"{p.urls['referral']}/v1/me/invite-code", headers=alice).json()["code"]
    event = {
        "event_id": "reg-bob-1",
        "type": "user.registered",
        "user_id": "bob",
        "app_id": "broker-app",
        "occurred_at": now.isoformat(),
        "invite_code": code,
    }
    first = http.post(f"{p.urls['activity']}/v1/events", headers=backend, json=event)
    second = http.post(f"{p.urls['activity']}/v1/events", headers=backend, json=event)
    assert first.json()["status"] == "accepted", first.text
    assert second.json()["status"] == "duplicate", second.text

    def records() -> list[dict[str, Any]]:
        return reward_records(http, p.urls, op, activity)

    issued = poll(records, lambda rs: rs and rs[0]["status"] == "issued")
    assert [r["status"] for r in issued] == ["issued"], p.log_tail()
    assert issued[0]["user_id"] == "bob"

    coupons = http.get(f"{p.urls['reward']}/v1/me/coupons", headers=bob).json()["items"]
    assert len(coupons) == 1 and coupons[0]["status"] == "unused"

    def registration_node() -> dict[str, Any]:
        nodes = http.get(f"{p.urls['referral']}/v1/bindings/bob", headers=op).json()["nodes"]
        return next(n for n in nodes if n["node"] == "registration")

    node = poll(registration_node, lambda n: n["binding"] is not None)
    assert node["binding"]["inviter_id"] == "alice"
    assert node["binding"]["channel"] == "invite_code"

    # The duplicate changed nothing, also after the workers had time to act on it.
    time.sleep(1.0)
    assert len(records()) == 1
    assert len(http.get(f"{p.urls['reward']}/v1/me/coupons", headers=bob).json()["items"]) == 1

    for url in p.urls.values():
        metrics = http.get(f"{url}/metrics")
        assert metrics.status_code == 200 and "http_requests_total" in metrics.text
    # The workers serve theirs: jobs run, how long they took, what the outbox still owes.
    worker = {name: http.get(url).text for name, url in p.worker_metrics.items()}
    assert 'job="activity.evaluate_event",outcome="ok"' in worker["activity"]
    assert 'job="reward.create_from_grant",outcome="ok"' in worker["reward"]
    assert "job_duration_seconds_bucket" in worker["referral"]
    assert 'outbox_messages{state="unsent"}' in worker["activity"]
    assert 'queue_jobs_waiting{queue="reward"}' in worker["activity"]
