"""Sandbox clock advance: how long does advancing a sandbox tenant by 30 days take?

Runs against a running stack (``activity-platform dev``, which allows sandboxes) over HTTP.
Creates a fresh sandbox tenant whose clock starts on 2027-01-01 (Hong Kong), one coupon prize
and one published basic activity per ``--activities`` (deposit reached at 10k / 50k / 100k
HKD; every other one real-time with a 7-day lock-up on its tiers, the others at-end over the
first half of the month), and ``--users`` users with deposits on five days of the month
(posted up front, in batches: amount tasks wait for the daily runs). Then one timed
``POST /v1/sandbox/clock`` to ``--days`` later — 30 daily runs, T+1 settlements and the
lock-ups falling due on the way — repeated while it answers 202. The seeded events are
evaluated by the workers as they arrive; the advance waits for that work at its first stop,
so the bench first advances to the clock's own time (which does only that) and prints both
times and their sum (the sum is what one advance from the seeding would take). Prints the
load average and the reward records per status.

    .venv/bin/python -m bench.sandbox_clock [--activity-url http://127.0.0.1:8001]
        [--reward-url http://127.0.0.1:8003] [--users 1000] [--activities 10] [--days 30]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx

from service_kit.auth import CallerKind, encode_token
from service_kit.config import DEV_JWT_SECRET

START = datetime.fromisoformat("2027-01-01T00:00:00+08:00")


def headers(secret: str, tenant: str, kind: CallerKind) -> dict[str, str]:
    perms = ["ActivityCenterFull", "RightsSystemFull"] if kind is CallerKind.operator else []
    token = encode_token(secret, sub="bench", tenant_id=tenant, kind=kind, permissions=perms)
    return {"Authorization": f"Bearer {token}"}


def ok(response: httpx.Response, *codes: int) -> dict[str, Any]:
    if response.status_code not in (codes or (200, 201)):
        raise SystemExit(f"{response.request.method} {response.request.url}: {response.text}")
    return dict(response.json())


async def seed(
    client: httpx.AsyncClient, args: argparse.Namespace, op: dict[str, str], svc: dict[str, str]
) -> None:
    for n in range(args.activities):
        prize = ok(
            await client.post(
                f"{args.reward_url}/v1/prizes",
                json={
                    "type": "coupon",
                    "name": f"card {n}",
                    "coupon_type": "market_data",
                    "title": {"en": f"Card {n}"},
                    "validity": {"days_from_issue": 30},
                    "instructions": "-",
                },
                headers=op,
            )
        )
        real_time = n % 2 == 0
        lock = {"lock_up": {"amount": "5000", "currency": "HKD", "days": 7}} if real_time else {}
        ends = START + (timedelta(days=31) if real_time else timedelta(days=15))
        rules = [
            {
                "id": f"t{threshold}",
                "task": "deposit_reached",
                "threshold": threshold,
                "currency": "HKD",
                "prize_id": prize["id"],
                **lock,
            }
            for threshold in ("10000", "50000", "100000")
        ]
        created = ok(
            await client.post(
                f"{args.activity_url}/v1/activities",
                json={
                    "kind": "basic",
                    "name": {"en": f"Bench {n}"},
                    "starts_at": START.isoformat(),
                    "ends_at": ends.isoformat(),
                    "timing": "real_time" if real_time else "at_end",
                    "rules": rules,
                },
                headers=op,
            )
        )
        ok(
            await client.post(
                f"{args.activity_url}/v1/activities/{created['id']}/publish", headers=op
            )
        )
    rng = random.Random(7)
    events = []
    for u in range(args.users):
        for day in sorted(rng.sample(range(args.days), 5)):
            at = START + timedelta(days=day, hours=10, minutes=rng.randrange(600))
            events.append(
                {
                    "event_id": f"dep-{u}-{day}",
                    "type": "cash.deposited",
                    "user_id": f"u{u:06d}",
                    "app_id": "bench-app",
                    "occurred_at": at.isoformat(),
                    "amount": str(rng.choice((3000, 12000, 30000))),
                    "currency": "HKD",
                }
            )
    for start in range(0, len(events), 1000):
        ok(
            await client.post(
                f"{args.activity_url}/v1/events/batch",
                json={"events": events[start : start + 1000]},
                headers=svc,
            )
        )
    print(f"seeded {args.activities} activities, {args.users} users, {len(events)} events")


async def main(args: argparse.Namespace) -> None:
    tenant = f"bench-sbx-{uuid.uuid4().hex[:8]}"
    op = headers(args.jwt_secret, tenant, CallerKind.operator)
    svc = headers(args.jwt_secret, tenant, CallerKind.service)
    async with httpx.AsyncClient(timeout=600) as client:
        ok(
            await client.post(
                f"{args.activity_url}/v1/sandbox",
                json={"starts_at": START.isoformat()},
                headers=op,
            ),
            201,
        )
        await seed(client, args, op, svc)
        print(f"load average before: {load()}")

        async def advance(to: datetime) -> tuple[float, int]:
            started = time.perf_counter()
            calls = 0
            while True:
                calls += 1
                answer = await client.post(
                    f"{args.activity_url}/v1/sandbox/clock",
                    json={"to": to.isoformat(), "wait_seconds": 300},
                    headers=op,
                )
                ok(answer, 200, 202)
                if answer.status_code == 200:
                    return time.perf_counter() - started, calls

        drained, _ = await advance(START)
        print(f"seeded events evaluated (advance to the start) in {drained:.1f} s")
        elapsed, calls = await advance(START + timedelta(days=args.days))
        stats = ok(await client.get(f"{args.reward_url}/v1/reward-records/stats", headers=op))
    print(f"advanced {args.days} days in {elapsed:.1f} s ({calls} call(s)); tenant {tenant}")
    print(f"both: {drained + elapsed:.1f} s; load average after: {load()}")
    print(f"reward records: {stats}")


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--activity-url", default="http://127.0.0.1:8001")
    parser.add_argument("--reward-url", default="http://127.0.0.1:8003")
    parser.add_argument("--jwt-secret", default=DEV_JWT_SECRET)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--activities", type=int, default=10)
    parser.add_argument("--days", type=int, default=30)
    asyncio.run(main(parser.parse_args()))
