"""The referral graph over real HTTP with every process running: nobody becomes their own
effective inviter, and a node's inviter is frozen the moment its event is acknowledged."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import RunningPlatform

pytestmark = pytest.mark.e2e
OPERATOR_PERMISSIONS = ("ActivityCenterFull", "RightsSystemFull")


def _poll(fetch: Any, done: Any, timeout: float = 40.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if done(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def test_effective_inviter_cycles_are_refused(running_platform: RunningPlatform) -> None:
    p = running_platform
    tenant = "tenant-cycles"
    op = p.token("operator", tenant=tenant, sub="ops-1", permissions=OPERATOR_PERMISSIONS)
    backend = p.token("service", tenant=tenant, sub="broker-backend")
    referral, activity = p.urls["referral"], p.urls["activity"]
    http = httpx.Client(timeout=15)

    # A invites B at registration, through the registration event and the referral worker.
    code = http.get(
        f"{referral}/v1/me/invite-code",
        headers=p.token("user", tenant=tenant, sub="A", app="broker-app"),
    ).json()["code"]
    registered = http.post(
        f"{activity}/v1/events",
        json={
            "event_id": "reg-B",
            "type": "user.registered",
            "user_id": "B",
            "app_id": "broker-app",
            "occurred_at": datetime.now(UTC).isoformat(),
            "invite_code": code,
        },
        headers=backend,
    )
    assert registered.status_code == 202, registered.text
    bound = _poll(
        lambda: http.get(f"{referral}/v1/bindings/B", headers=op).json(),
        lambda body: body["nodes"][0]["binding"] is not None,
    )
    assert bound["nodes"][0]["binding"]["inviter_id"] == "A", p.log_tail()

    # B is A's effective inviter at every node through the fall-back: B may not become A's.
    for node in ("account_opening", "deposit"):
        refused = http.put(f"{referral}/v1/bindings/A/{node}", json={"inviter_id": "B"}, headers=op)
        assert refused.status_code == 409, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert refused.json()["code"] == "binding_cycle" and refused.json()["node"] == node

    # Racing requests: "D invited by C" and "C's account-opening inviter is D", many times.
    def bind(invitee: str, inviter: str) -> int:
        return http.post(
            f"{referral}/v1/bindings",
            json={"invitee_id": invitee, "inviter_id": inviter, "node": "registration"},
            headers=op,
        ).status_code

    def change(invitee: str, inviter: str) -> int:
        return http.put(
            f"{referral}/v1/bindings/{invitee}/account_opening",
            json={"inviter_id": inviter},
            headers=op,
        ).status_code

    with ThreadPoolExecutor(max_workers=2) as pool:
        for n in range(10):
            c, d = f"C{n}", f"D{n}"
            outcomes = sorted(
                f.result() for f in (pool.submit(bind, d, c), pool.submit(change, c, d))
            )
            assert outcomes in ([200, 409], [201, 409]), outcomes
            body = http.get(f"{referral}/v1/bindings/{c}", headers=op).json()
            ao = next(node for node in body["nodes"] if node["node"] == "account_opening")
            reg_d = http.get(f"{referral}/v1/bindings/{d}", headers=op).json()["nodes"][0]
            # Never both: C's effective AO inviter D while D's is C.
            assert not (ao["effective_inviter_id"] == d and reg_d["effective_inviter_id"] == c)


def test_a_node_is_frozen_once_its_event_is_acknowledged(
    running_platform: RunningPlatform,
) -> None:
    p = running_platform
    tenant = "tenant-freeze"
    op = p.token("operator", tenant=tenant, sub="ops-1", permissions=OPERATOR_PERMISSIONS)
    backend = p.token("service", tenant=tenant, sub="broker-backend")
    referral, activity = p.urls["referral"], p.urls["activity"]
    http = httpx.Client(timeout=15)

    for n in range(15):
        invitee = f"opener-{n}"
        first = http.put(
            f"{referral}/v1/bindings/{invitee}/account_opening",
            json={"inviter_id": "first-inviter"},
            headers=op,
        )
        assert first.status_code == 200, first.text
        ack = http.post(
            f"{activity}/v1/events",
            json={
                "event_id": f"open-{invitee}",
                "type": "account.opened",
                "user_id": invitee,
                "app_id": "broker-app",
                "occurred_at": datetime.now(UTC).isoformat(),
            },
            headers=backend,
        )
        assert ack.status_code == 202, ack.text
        # Sent right after the 202, before any worker can have processed the event.
        late = http.put(
            f"{referral}/v1/bindings/{invitee}/account_opening",
            json={"inviter_id": "late-inviter"},
            headers=op,
        )
        assert late.status_code == 409, late.text
        assert late.json()["code"] == "node_completed"
        body = http.get(f"{referral}/v1/bindings/{invitee}", headers=op).json()
        ao = next(node for node in body["nodes"] if node["node"] == "account_opening")
        assert ao["binding"]["inviter_id"] == "first-inviter"
        assert [h["inviter_id"] for h in body["history"]] == ["first-inviter"]


def test_a_referral_draft_is_dry_run_over_real_http(running_platform: RunningPlatform) -> None:
    """The activity service asks the referral service (a separate process) for the
    invitees' inviters; the answer names who would have earned what, and nothing is written
    in any service."""
    p = running_platform
    tenant = "tenant-dry-run"
    op = p.token("operator", tenant=tenant, sub="ops-1", permissions=OPERATOR_PERMISSIONS)
    backend = p.token("service", tenant=tenant, sub="broker-backend")
    referral, activity, reward = p.urls["referral"], p.urls["activity"], p.urls["reward"]
    http = httpx.Client(timeout=30)
    prize = http.post(
        f"{reward}/v1/prizes",
        json={
            "type": "coupon",
            "name": "market data",
            "coupon_type": "market_data",
            "title": {"en": "Market data card"},
            "validity": {"days_from_issue": 30},
            "cost_amount": "5",
            "cost_currency": "HKD",
        },
        headers=op,
    )
    assert prize.status_code == 201, prize.text
    prize_id = prize.json()["id"]
    draft = http.post(
        f"{activity}/v1/activities",
        json={
            "kind": "referral",
            "name": {"en": "Invite friends"},
            "starts_at": "2030-01-01T00:00:00Z",
            "ends_at": "2030-02-01T00:00:00Z",
            "attribute": "marketing",
            "reward_type": "fixed",
            "rules": [{"id": "reg", "task": "register", "prize_id": prize_id}],
            "prize_limits": [{"prize_id": prize_id, "max_per_user": 2}],
        },
        headers=op,
    )
    assert draft.status_code == 201, draft.text
    code = http.get(
        f"{referral}/v1/me/invite-code",
        headers=p.token("user", tenant=tenant, sub="X", app="broker-app"),
    ).json()["code"]
    started = datetime.now(UTC)
    for invitee in ("i1", "i2", "i3"):
        sent = http.post(
            f"{activity}/v1/events",
            json={
                "event_id": f"reg-{invitee}",
                "type": "user.registered",
                "user_id": invitee,
                "app_id": "broker-app",
                "occurred_at": datetime.now(UTC).isoformat(),
                "invite_code": code,
            },
            headers=backend,
        )
        assert sent.status_code == 202, sent.text
    for invitee in ("i1", "i2", "i3"):
        _poll(
            lambda invitee=invitee: http.get(f"{referral}/v1/bindings/{invitee}", headers=op),
            lambda got: got.status_code == 200 and got.json()["nodes"][0]["binding"] is not None,
        )
    period = {
        "starts_at": started.replace(microsecond=0).isoformat(),
        "ends_at": datetime.now(UTC).isoformat(),
    }
    answer = http.post(
        f"{activity}/v1/activities/{draft.json()['id']}/dry-run", json=period, headers=op
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert [(i["user_id"], i["counterpart_id"]) for i in body["items"]] == [
        ("X", "i1"),
        ("X", "i2"),
    ], p.log_tail()
    assert body["refused"] == {"cap_reached": 1}
    assert (float(body["cost_total"]), body["base_currency"]) == (10.0, "HKD")
    records = http.get(
        f"{reward}/v1/reward-records",
        params={"activity_code": draft.json()["activity_code"]},
        headers=op,
    )
    assert records.status_code == 200 and records.json()["items"] == [], records.text
