"""What the end-to-end tests and the HTTP benchmarks (``bench/support.py``) set up through
the public APIs before they post events: a prize and a published basic activity that
awards it ("register → that prize" unless told otherwise), and a poll for what the workers
do after."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx

OPERATOR_PERMISSIONS = ("ActivityCenterFull", "RightsSystemFull")

MARKET_DATA_COUPON: dict[str, Any] = {
    "type": "coupon",
    "name": "30-day market data",
    "coupon_type": "market_data",
    "title": {"en": "Market data card"},
    "validity": {"days_from_issue": 30},
}

T = TypeVar("T")


def _expect(response: httpx.Response, statuses: tuple[int, ...], doing: str) -> dict[str, Any]:
    # Raised, not asserted: the benchmarks may run with assertions off.
    if response.status_code not in statuses:
        raise AssertionError(f"{doing}: {response.status_code} {response.text}")
    answer: dict[str, Any] = response.json()
    return answer


def publish_campaign(
    http: httpx.Client,
    urls: dict[str, str],
    operator: dict[str, str],
    *,
    prize: dict[str, Any] | None = None,
    name: dict[str, str] | None = None,
    rules: Callable[[str], list[dict[str, Any]]] | None = None,
    started_days_ago: int = 1,
) -> tuple[str, dict[str, Any]]:
    """Creates ``prize`` (a market data coupon by default) and a basic activity awarding it
    by ``rules(prize_id)`` (one "register" rule by default), running from
    ``started_days_ago`` for 30 more days, and publishes it. Returns the prize id and the
    published activity."""
    now = datetime.now(UTC)
    created_prize = http.post(
        f"{urls['reward']}/v1/prizes", headers=operator, json=prize or MARKET_DATA_COUPON
    )
    prize_id = str(_expect(created_prize, (201,), "creating the prize")["id"])
    activity = http.post(
        f"{urls['activity']}/v1/activities",
        headers=operator,
        json={
            "kind": "basic",
            "name": name or {"en": "Sign-up gift"},
            "starts_at": (now - timedelta(days=started_days_ago)).isoformat(),
            "ends_at": (now + timedelta(days=30)).isoformat(),
            "rules": rules(prize_id) if rules else [{"task": "register", "prize_id": prize_id}],
        },
    )
    activity_id = _expect(activity, (201,), "creating the activity")["id"]
    published = http.post(
        f"{urls['activity']}/v1/activities/{activity_id}/publish", headers=operator
    )
    running = _expect(published, (200,), "publishing the activity")
    if running["status"] != "running":
        raise AssertionError(f"published but {running['status']}: {published.text}")
    return prize_id, running


def reward_records(
    http: httpx.Client, urls: dict[str, str], operator: dict[str, str], activity: dict[str, Any]
) -> list[dict[str, Any]]:
    """The first page of the reward records ``activity`` made."""
    answer = http.get(
        f"{urls['reward']}/v1/reward-records",
        headers=operator,
        params={"activity_code": activity["activity_code"]},
    )
    items: list[dict[str, Any]] = _expect(answer, (200,), "listing reward records")["items"]
    return items


def poll(
    fetch: Callable[[], T], done: Callable[[T], Any], timeout: float = 30.0, every: float = 0.2
) -> T:
    """``fetch()`` until ``done`` says yes or ``timeout`` seconds passed; the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if done(value) or time.monotonic() > deadline:
            return value
        time.sleep(every)
