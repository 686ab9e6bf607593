"""A tiered referral campaign end to end, over real HTTP with all six processes running.

Three ranges of the inviter's count of qualifying invitees:
    1–3  → prize A for each invitee
    4–8  → prize B for each invitee, and bonus X once on entering the range
    9+   → prize C for each invitee, and bonus Y once on entering the range
Prize settings cap C at 3 per user in this activity. Every qualifying invitee also earns
prize Z. The task is a first deposit of at least 1,000 HKD on the first deposit day; half
of the invitees deposit in USD (150 USD = 1,170 HKD at the tenant's 7.8 rate).

Twelve invitees register with the inviter's code, open accounts and deposit, one after the
other; a thirteenth deposits too little and a stranger with no inviter deposits enough.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import RunningPlatform

pytestmark = pytest.mark.e2e
OPERATOR_PERMISSIONS = ("ActivityCenterFull", "RightsSystemFull")
INVITER = "ivy"
INVITEES = [f"i{n:02d}" for n in range(1, 13)]

# The hand-computed table: invitee number → what the inviter earns for them.
EXPECTED_INVITER = {
    "i01": ["A"], "i02": ["A"], "i03": ["A"],
    "i04": ["B", "X"], "i05": ["B"], "i06": ["B"], "i07": ["B"], "i08": ["B"],
    "i09": ["C", "Y"], "i10": ["C"], "i11": ["C"],
    "i12": [],  # C is capped at 3 per user
}  # fmt: skip
EXPECTED_COUNTS = {"A": 3, "B": 5, "X": 1, "C": 3, "Y": 1, "Z": 12}


def _poll(fetch: Any, done: Any, timeout: float = 40.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if done(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def test_tiered_referral_campaign(running_platform: RunningPlatform) -> None:
    p = running_platform
    tenant = "tenant-tiered"
    op = p.token("operator", tenant=tenant, sub="ops-1", permissions=OPERATOR_PERMISSIONS)
    backend = p.token("service", tenant=tenant, sub="broker-backend")
    http = httpx.Client(timeout=15)
    now = datetime.now(UTC)

    names: dict[str, str] = {}
    for name in ("A", "B", "C", "X", "Y", "Z"):
        prize = http.post(
            f"{p.urls['reward']}/v1/prizes",
            headers=op,
            json={
                "type": "coupon",
                "name": f"Prize {name}",
                "coupon_type": "commission_free",
                "title": {"en": f"Prize {name}"},
                "validity": {"days_from_issue": 30},
            },
        )
        assert prize.status_code == 201, prize.text
        names[prize.json()["id"]] = name
    ids = {v: k for k, v in names.items()}

    rate = http.post(
        f"{p.urls['activity']}/v1/fx-rates",
        headers=op,
        json={
            "rates": [
                {
                    "source": "USD",
                    "target": "HKD",
                    "rate": "7.8",
                    "effective_at": (now - timedelta(days=30)).isoformat(),
                }
            ]
        },
    )
    assert rate.status_code == 201, rate.text

    created = http.post(
        f"{p.urls['activity']}/v1/activities",
        headers=op,
        json={
            "kind": "referral",
            "name": {"en": "Invite friends, climb the tiers"},
            "starts_at": (now - timedelta(days=1)).isoformat(),
            "ends_at": (now + timedelta(days=30)).isoformat(),
            "attribute": "regular",
            "reward_type": "tiered",
            "rules": [
                {
                    "id": "dep",
                    "task": "first_deposit",
                    "threshold": "1000",
                    "currency": "HKD",
                    "invitee_prize_id": ids["Z"],
                    "tiers": [
                        {"id": "t1", "min_invites": 1, "max_invites": 3, "prize_id": ids["A"]},
                        {
                            "id": "t2",
                            "min_invites": 4,
                            "max_invites": 8,
                            "prize_id": ids["B"],
                            "bonus_prize_id": ids["X"],
                        },
                        {
                            "id": "t3",
                            "min_invites": 9,
                            "max_invites": None,
                            "prize_id": ids["C"],
                            "bonus_prize_id": ids["Y"],
                        },
                    ],
                }
            ],
            "prize_limits": [{"prize_id": ids["C"], "max_per_user": 3}],
        },
    )
    assert created.status_code == 201, created.text
    activity = created.json()
    published = http.post(
        f"{p.urls['activity']}/v1/activities/{activity['id']}/publish", headers=op
    )
    assert published.status_code == 200 and published.json()["status"] == "running"

    inviter = p.token("user", tenant=tenant, sub=INVITER, app="broker-app")
    code = http.get(f"{p.urls['referral']}/v1/me/invite-code", headers=inviter).json()["code"]

    def records(**params: str) -> list[dict[str, Any]]:
        response = http.get(
            f"{p.urls['reward']}/v1/reward-records",
            headers=op,
            params={"activity_code": activity["activity_code"], "limit": "200", **params},
        )
        assert response.status_code == 200, response.text
        return list(response.json()["items"])

    sent: list[dict[str, Any]] = []

    def post(kind: str, user: str, at: datetime, **fields: Any) -> None:
        body = {
            "event_id": f"{kind}:{user}",
            "type": kind,
            "user_id": user,
            "app_id": "broker-app",
            "occurred_at": at.isoformat(),
            **fields,
        }
        response = http.post(f"{p.urls['activity']}/v1/events", headers=backend, json=body)
        assert response.status_code == 202, response.text
        sent.append(body)

    def onboard(user: str, deposit: dict[str, str], code_used: str | None) -> None:
        registered = {"invite_code": code_used} if code_used else {}
        post("user.registered", user, now - timedelta(minutes=30), **registered)
        post("account.opened", user, now - timedelta(minutes=20))
        post("cash.deposited", user, now - timedelta(minutes=10), **deposit)

    # One invitee after the other, so the inviter's count (and the range) is known per row.
    for n, invitee in enumerate(INVITEES):
        deposit = (
            {"amount": "1000", "currency": "HKD"} if n < 6 else {"amount": "150", "currency": "USD"}
        )
        onboard(invitee, deposit, code)
        mine = _poll(lambda u=invitee: records(user_id=u), lambda rs: len(rs) == 1)
        assert [names[r["prize_id"]] for r in mine] == ["Z"], (invitee, mine, p.log_tail())
        total = sum(len(EXPECTED_INVITER[i]) for i in INVITEES[: n + 1])
        _poll(lambda: records(user_id=INVITER), lambda rs, t=total: len(rs) >= t)

    onboard("i13", {"amount": "500", "currency": "HKD"}, code)  # too little
    onboard("stranger", {"amount": "5000", "currency": "HKD"}, None)  # no inviter
    time.sleep(2.0)  # give the workers time to (wrongly) act on them

    everything = _poll(
        records, lambda rs: len(rs) == 25 and all(r["status"] == "issued" for r in rs)
    )
    by_invitee: dict[str, list[str]] = {i: [] for i in INVITEES}
    for record in everything:
        if record["user_id"] == INVITER and record["counterpart_id"]:
            by_invitee[record["counterpart_id"]].append(names[record["prize_id"]])
    bonuses = sorted(
        names[r["prize_id"]]
        for r in everything
        if r["user_id"] == INVITER and not r["counterpart_id"]
    )
    # bonuses are not tied to an invitee: fold them into the row that entered the range
    by_invitee["i04"].extend(b for b in bonuses if b == "X")
    by_invitee["i09"].extend(b for b in bonuses if b == "Y")
    assert {i: sorted(v) for i, v in by_invitee.items()} == EXPECTED_INVITER, p.log_tail()
    assert Counter(names[r["prize_id"]] for r in everything) == EXPECTED_COUNTS
    invitee_rows = sorted(
        (r["user_id"], r["counterpart_id"]) for r in everything if names[r["prize_id"]] == "Z"
    )
    assert invitee_rows == [(i, INVITER) for i in INVITEES]
    assert {r["status"] for r in everything} == {"issued"}
    assert not records(user_id="i13") and not records(user_id="stranger")

    # Replaying every event (one batch) changes nothing.
    replay = http.post(
        f"{p.urls['activity']}/v1/events/batch", headers=backend, json={"events": sent}
    )
    assert replay.status_code == 200, replay.text
    assert replay.json()["duplicates"] == len(sent) == 42
    time.sleep(1.5)
    assert len(records()) == 25

    explain = http.get(
        f"{p.urls['activity']}/v1/activities/{activity['id']}/explain",
        headers=op,
        params={"user_id": INVITER},
    ).json()
    assert len(explain["grants"]) == 13
    assert any(o["outcome"] == "cap_reached" for o in explain["outcomes"])
