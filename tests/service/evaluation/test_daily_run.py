"""The daily run decides users in chunks: a crash or a spent time budget resumes after the
last finished chunk and grants each user once; basic activities share one pass over the
users' facts, with segments, new-user attributes and caps applied per chunk; two runs of
the same day racing grant nothing twice."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import uuid
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, text

from activity_service.evaluation import daily_run
from activity_service.evaluation.dry_run_repository import DryRunRepository
from activity_service.evaluation.models import Grant, PrizeCapCounter
from activity_service.evaluation.repository import EvaluationRepository
from service_kit.correlation import META_KEY
from service_kit.transient import is_transient
from tests.service.evaluation.steps import (
    activity,
    announced,
    explain,
    grants,
    money,
    post,
    prizes,
    table,
)
from tests.service.harness import Platform

DAY = date(2026, 12, 2)

_SEED = """
INSERT INTO events (id, tenant_id, event_id, type, user_id, app_id, occurred_at, payload,
                    received_by)
SELECT gen_random_uuid(), 'tenant-a', 'dep-' || g, 'cash.deposited',
       'u' || lpad(g::text, 5, '0'), 'broker-app', CAST(:at AS timestamptz),
       jsonb_build_object('amount', CAST(:amount AS text), 'currency', 'HKD'), 'test'
FROM generate_series(0, CAST(:users AS int) - 1) AS g
"""


async def seed_deposits(platform: Platform, users: int, amount: str = "20000") -> list[str]:
    """``users`` users with one deposit on DAY, stored directly (no per-event jobs)."""
    async with platform.db("activity").session() as session:
        await session.execute(
            text(_SEED),
            {
                "at": datetime.fromisoformat("2026-12-02T10:00:00+08:00"),
                "amount": amount,
                "users": users,
            },
        )
    return [f"u{n:05d}" for n in range(users)]


async def deposit_activity(platform: Platform, cap: bool = False) -> dict[str, Any]:
    (prize,) = await prizes(platform, 1)
    body: dict[str, Any] = {
        "kind": "basic",
        "rules": [
            {
                "id": "d10k",
                "task": "deposit_reached",
                "threshold": "10000",
                "currency": "HKD",
                "prize_id": prize,
            },
            {
                "id": "d15k",
                "task": "deposit_reached",
                "threshold": "15000",
                "currency": "HKD",
                "prize_id": prize,
            },
        ],
    }
    created = await activity(platform, body)
    if cap:
        await cap_prize(platform, created["id"], prize, 1)
    return created


async def cap_prize(platform: Platform, activity_id: str, prize_id: str, cap: int) -> None:
    """A per-user cap on a prize, written into the stored config (the API offers prize
    settings on referral activities only; the grant writer honours them for any kind)."""
    limits = [{"prize_id": prize_id, "max_per_user": cap}]
    async with platform.db("activity").session() as session:
        await session.execute(
            text(
                "UPDATE activities SET config = jsonb_set(config, '{prize_limits}', "
                "CAST(:limits AS jsonb)) WHERE id = :id"
            ),
            {"limits": json.dumps(limits), "id": uuid.UUID(activity_id)},
        )


async def stored(platform: Platform, activity_id: str) -> tuple[int, int, int]:
    """(grants, distinct (user, rule), grants announced by exactly one outbox message)."""
    async with platform.db("activity").session() as session:
        act = uuid.UUID(activity_id)
        count = await session.scalar(
            select(func.count()).select_from(Grant).where(Grant.activity_id == act)
        )
        pairs = await session.scalar(
            select(func.count()).select_from(
                select(Grant.user_id, Grant.rule_id)
                .where(Grant.activity_id == act)
                .distinct()
                .subquery()
            )
        )
        keys = set(await session.scalars(select(Grant.grant_key).where(Grant.activity_id == act)))
    sent = await announced(platform)
    messages = sum(1 for key in keys if len(sent.get(key, ())) == 1)
    return int(count or 0), int(pairs or 0), messages


async def progress(platform: Platform) -> tuple[str | None, dict[str, Any], int]:
    async with platform.db("activity").session() as session:
        run = await EvaluationRepository.from_session(session).get_run("tenant-a", DAY)
        assert run is not None
        return run.status, dict(run.progress), run.grants


async def test_crash_and_budget_resume_after_the_last_chunk(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    act = await deposit_activity(platform)
    users = await seed_deposits(platform, 3000)
    real = daily_run.decide_basic
    calls = 0

    def crash_in_third_chunk(scope, facts, tenant, shared=None):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        if calls == 1200:
            raise RuntimeError("worker killed")
        return real(scope, facts, tenant, shared)

    monkeypatch.setattr(daily_run, "decide_basic", crash_in_third_chunk)
    with pytest.raises(RuntimeError):
        await daily_run.run_daily(
            platform.db("activity"), "tenant-a", DAY, platform.clock, None, chunk_size=500
        )
    # two chunks of 500 were written, each with its cursor; the third rolled back
    assert await stored(platform, act["id"]) == (2000, 2000, 2000)
    status, saved, count = await progress(platform)
    assert status == "running" and count == 2000
    assert saved["passes"] == [{"activities": [act["id"]], "after": users[999], "done": False}]

    monkeypatch.setattr(daily_run, "decide_basic", real)
    parts = []
    while True:  # as the job does: a spent budget ends the part, the next one continues
        result = await daily_run.run_daily(
            platform.db("activity"),
            "tenant-a",
            DAY,
            platform.clock,
            None,
            budget_seconds=0,
            chunk_size=500,
        )
        parts.append(result.grants)
        if result.done:
            break
    assert parts == [1000, 1000, 1000, 1000]  # one chunk of 500 users (2 tiers) per part
    assert await stored(platform, act["id"]) == (6000, 6000, 6000)
    status, saved, count = await progress(platform)
    assert status == "done" and count == 6000
    assert saved["passes"][0]["done"] and saved["passes"][0]["after"] == users[-1]

    # a done day is not run again; deciding it again from scratch grants nothing
    again = await daily_run.run_daily(
        platform.db("activity"), "tenant-a", DAY, platform.clock, None
    )
    assert again.done and again.grants == 0
    async with platform.db("activity").session() as session:
        await session.execute(text("DELETE FROM daily_runs"))
    redo = await daily_run.run_daily(
        platform.db("activity"), "tenant-a", DAY, platform.clock, None, chunk_size=700
    )
    assert redo.done and redo.grants == 0
    assert await stored(platform, act["id"]) == (6000, 6000, 6000)


async def test_activities_share_one_pass_with_segments_attributes_and_caps(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    p_a, p_b, p_c = await prizes(platform, 3)
    segment = await platform.activity.post(
        "/v1/segments", json={"name": "vip", "source": "upload"}, headers=platform.operator()
    )
    assert segment.status_code == 201, segment.text
    uploaded = await platform.activity.put(
        f"/v1/segments/{segment.json()['id']}/members", json=["big"], headers=platform.operator()
    )
    assert uploaded.status_code == 200, uploaded.text
    new_a = await activity(
        platform,
        {
            "kind": "basic",
            "attribute": "new_user",
            "rules": [
                {
                    "id": "a",
                    "task": "deposit_reached",
                    "threshold": "10000",
                    "currency": "HKD",
                    "prize_id": p_a,
                }
            ],
        },
    )
    platform.clock.advance(timedelta(seconds=1))  # published after A: decided after it
    new_b = await activity(
        platform,
        {
            "kind": "basic",
            "attribute": "new_user",
            "rules": [
                {
                    "id": "b",
                    "task": "net_deposit",
                    "threshold": "5000",
                    "currency": "HKD",
                    "prize_id": p_b,
                }
            ],
        },
    )
    platform.clock.advance(timedelta(seconds=1))
    vip = await activity(
        platform,
        {
            "kind": "basic",
            "segment_id": segment.json()["id"],
            "segment_refresh": "5m",
            "rules": [
                {
                    "id": f"c{threshold}",
                    "task": "deposit_reached",
                    "threshold": threshold,
                    "currency": "HKD",
                    "prize_id": p_c,
                }
                for threshold in ("1000", "5000")
            ],
        },
    )
    await cap_prize(platform, vip["id"], p_c, 1)
    await post(
        platform,
        money("cash.deposited", "big", "2026-12-02T10:00:00+08:00", "20000"),
        money("cash.deposited", "small", "2026-12-02T11:00:00+08:00", "6000"),
        money("cash.deposited", "later", "2026-12-03T11:00:00+08:00", "90000"),
    )
    await platform.drain()
    reads: list[int] = []
    real_fact_records = DryRunRepository.fact_records

    async def counted(self, tenant_id, user_ids, types):  # type: ignore[no-untyped-def]
        reads.append(len(user_ids))
        return await real_fact_records(self, tenant_id, user_ids, types)

    monkeypatch.setattr(DryRunRepository, "fact_records", counted)
    result = await daily_run.run_daily(
        platform.db("activity"), "tenant-a", DAY, platform.clock, None
    )
    assert result.done and result.grants == 3
    assert reads == [2]  # both users' facts read once for the three activities
    status, saved, _ = await progress(platform)
    assert saved["passes"] == [
        {"activities": [new_a["id"], new_b["id"], vip["id"]], "after": "small", "done": True}
    ]
    assert table(await grants(platform, new_a["id"])) == [("big", "a", p_a)]
    # big's new-user reward of A was achieved at the same time: not new for B any more
    assert table(await grants(platform, new_b["id"])) == [("small", "b", p_b)]
    assert table(await grants(platform, vip["id"])) == [("big", "c1000", p_c)]

    def outcomes(why: dict[str, Any]) -> dict[str, str]:
        return {o["rule_id"]: o["outcome"] for o in why["outcomes"]}

    assert outcomes(await explain(platform, new_a["id"], "small")) == {"a": "task_not_completed"}
    assert outcomes(await explain(platform, new_b["id"], "big")) == {"b": "not_new_user"}
    assert outcomes(await explain(platform, vip["id"], "big")) == {
        "c1000": "granted",
        "c5000": "cap_reached",
    }
    assert outcomes(await explain(platform, vip["id"], "small")) == {
        "c1000": "not_in_segment",
        "c5000": "not_in_segment",
    }
    # the next day: the user who came later joins; nobody is granted twice
    reads.clear()
    second = await daily_run.run_daily(
        platform.db("activity"), "tenant-a", date(2026, 12, 3), platform.clock, None
    )
    assert second.grants == 1 and reads == [3]
    assert table(await grants(platform, new_a["id"])) == [("big", "a", p_a), ("later", "a", p_a)]


async def test_two_runs_racing_grant_each_decision_once(platform: Platform) -> None:
    act = await deposit_activity(platform, cap=True)
    await seed_deposits(platform, 600)
    db = platform.db("activity")

    async def as_the_job(chunk_size: int) -> daily_run.DailyRunResult:
        """The run, tried again after a transient failure as the job is: chunks of two runs
        written at once may deadlock on users both runs hold (PostgreSQL picks a victim)."""
        while True:
            try:
                return await daily_run.run_daily(
                    db, "tenant-a", DAY, platform.clock, None, chunk_size=chunk_size
                )
            except Exception as exc:
                if not is_transient(exc):
                    raise

    first, second = await asyncio.gather(as_the_job(100), as_the_job(150))
    assert first.done and second.done
    # one grant per user (the cap of 1 refuses the second tier), whichever run made it
    assert await stored(platform, act["id"]) == (600, 600, 600)
    # every chunk committed counts its grants (a victim's committed chunks included)
    assert (await progress(platform))[2] == 600
    async with db.session() as session:
        slots = await session.scalars(
            select(PrizeCapCounter.count).where(PrizeCapCounter.activity_id == uuid.UUID(act["id"]))
        )
        assert set(slots.all()) == {1}
    assert table(await grants(platform, act["id"]))[0][:2] == ("u00000", "d10k")


# --------------------------------------------------------------------------- one pass


_KILLED_RUN = """
import asyncio, sys
from datetime import date, datetime
from activity_service.evaluation import daily_run
from activity_service.evaluation.repository import EvaluationRepository
from service_kit.clock import FrozenClock
from service_kit.db import Database

url, day, now = sys.argv[1], date.fromisoformat(sys.argv[2]), datetime.fromisoformat(sys.argv[3])
real = EvaluationRepository.save_progress
saved = 0

async def hang_in_third_chunk(self, *args, **kwargs):
    global saved
    await real(self, *args, **kwargs)
    saved += 1
    if saved == 3:  # the third chunk is written, its transaction still open
        print("writing", flush=True)
        await asyncio.sleep(3600)

EvaluationRepository.save_progress = hang_in_third_chunk
db = Database(url, pool_size=2)
asyncio.run(daily_run.run_daily(db, "tenant-a", day, FrozenClock(now), None, chunk_size=200))
"""


async def _ledger(platform: Platform) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Every grant (activity, user, rule, achieved at, cap slot, message payload) and
    outcome."""
    async with platform.db("activity").session() as session:
        granted = await session.execute(
            text(
                "SELECT g.activity_id, g.user_id, g.rule_id, g.achieved_at, g.cap_slot,"
                " g.grant_key FROM grants g ORDER BY 1, 2, 3"
            )
        )
        outcomes = await session.execute(
            text(
                "SELECT activity_id, user_id, rule_id, outcome, detail FROM evaluation_outcomes "
                "ORDER BY 1, 2, 3"
            )
        )
        ledger = granted.all()
        decided = [tuple(r) for r in outcomes.all()]
    sent = await announced(platform)
    assert all(len(sent[r[-1]]) == 1 for r in ledger)  # each grant announced once
    return [(*r[:-1], sent[r[-1]][0]) for r in ledger], decided


async def _forget_the_day(platform: Platform) -> None:
    async with platform.db("activity").session() as session:
        await session.execute(
            text(
                "TRUNCATE daily_runs, grants, outbox_messages, evaluation_outcomes, "
                "prize_cap_counters"
            )
        )


async def test_activities_in_one_pass_grant_what_each_alone_grants(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ten activities sharing one pass (and their users' flow sums) make the same grants,
    payloads and outcomes as ten passes of one activity each, with one read of the facts."""
    prize_ids = await prizes(platform, 3)
    created = []
    for n in range(10):
        rules = [
            {
                "id": f"t{tier}",
                "task": ("deposit_reached", "net_deposit", "net_transfer_in")[n % 3],
                "threshold": str(tier * (1 + n % 4)),
                "currency": "USD" if n == 7 else "HKD",
                "prize_id": prize_ids[n % 3],
            }
            for tier in (1000, 8000)
        ]
        created.append(await activity(platform, {"kind": "basic", "rules": rules}))
        platform.clock.advance(timedelta(seconds=1))
    await cap_prize(platform, created[4]["id"], prize_ids[1], 1)
    rates = await platform.activity.post(
        "/v1/fx-rates",
        json={
            "rates": [
                {
                    "source": "HKD",
                    "target": "USD",
                    "rate": "0.128",
                    "effective_at": "2026-01-01T00:00:00+00:00",
                }
            ]
        },
        headers=platform.operator(),
    )
    assert rates.status_code == 201, rates.text
    await post(
        platform,
        money("cash.deposited", "ann", "2026-12-01T10:00:00+08:00", "9000"),
        money("cash.withdrawn", "ann", "2026-12-02T09:00:00+08:00", "3000"),
        money("cash.deposited", "ann", "2026-12-02T10:00:00+08:00", "20000"),
        money("cash.deposited", "bob", "2026-12-02T11:00:00+08:00", "2500"),
        money("cash.deposited", "cid", "2026-12-02T23:59:00+08:00", "40000"),
        money("cash.withdrawn", "cid", "2026-12-02T23:59:30+08:00", "39000"),
        money("cash.deposited", "dan", "2026-12-03T01:00:00+08:00", "90000"),  # after the day
    )
    await platform.drain()
    await _forget_the_day(platform)
    reads: list[int] = []
    real_fact_records = DryRunRepository.fact_records

    async def counted(self, tenant_id, user_ids, types):  # type: ignore[no-untyped-def]
        reads.append(len(user_ids))
        return await real_fact_records(self, tenant_id, user_ids, types)

    monkeypatch.setattr(DryRunRepository, "fact_records", counted)
    db = platform.db("activity")
    shared = await daily_run.run_daily(db, "tenant-a", DAY, platform.clock, None)
    assert shared.done and reads == [3]  # ann, bob, cid: once for the ten activities
    together = await _ledger(platform)
    assert shared.grants == len(together[0]) > 10
    assert {g[0] for g in together[0]} >= {uuid.UUID(created[n]["id"]) for n in (0, 1, 2)}

    await _forget_the_day(platform)
    reads.clear()
    async with db.session() as session:  # one pass per activity (as saved by older runs)
        await session.execute(
            text(
                "INSERT INTO daily_runs (tenant_id, day, status, progress, grants, started_at) "
                "VALUES ('tenant-a', :day, 'running', CAST(:progress AS jsonb), 0, now())"
            ),
            {"day": DAY, "progress": json.dumps({a["id"]: None for a in created})},
        )
    alone = await daily_run.run_daily(db, "tenant-a", DAY, platform.clock, None)
    assert alone.done and reads == [3] * 10
    status, saved, _ = await progress(platform)
    assert status == "done" and len(saved["passes"]) == 10
    separately = await _ledger(platform)
    assert alone.grants == shared.grants

    def comparable(ledger: tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]) -> Any:
        granted, outcomes = ledger
        # message payloads equal but for their request id stamp, if any
        return [g[:5] + ({k: v for k, v in g[5].items() if k != META_KEY},) for g in granted], (
            outcomes
        )

    assert comparable(together) == comparable(separately)


async def test_a_killed_run_resumes_without_double_grants(platform: Platform) -> None:
    """The worker process is SIGKILLed while a chunk's transaction is open: the chunks
    before it stay written with their cursor, that chunk's grants vanish with it, and the
    run resumed later grants every user exactly once."""
    first = await deposit_activity(platform, cap=True)
    platform.clock.advance(timedelta(seconds=1))
    second = await deposit_activity(platform)
    users = await seed_deposits(platform, 1000)
    db = platform.db("activity")
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _KILLED_RUN,
        db.url,
        DAY.isoformat(),
        platform.clock.now().isoformat(),
        stdout=asyncio.subprocess.PIPE,
    )
    assert child.stdout is not None
    line = await asyncio.wait_for(child.stdout.readline(), timeout=120)
    assert line.strip() == b"writing"
    child.send_signal(signal.SIGKILL)
    await child.wait()
    # two chunks of 200 users written: 1 grant each in the capped one, 2 in the other
    assert await stored(platform, first["id"]) == (400, 400, 400)
    assert await stored(platform, second["id"]) == (800, 800, 800)
    status, saved, count = await progress(platform)
    assert status == "running" and count == 1200
    assert saved["passes"] == [
        {"activities": [first["id"], second["id"]], "after": users[399], "done": False}
    ]
    resumed = await daily_run.run_daily(db, "tenant-a", DAY, platform.clock, None)
    assert resumed.done and resumed.grants == 600 + 1200
    assert await stored(platform, first["id"]) == (1000, 1000, 1000)
    assert await stored(platform, second["id"]) == (2000, 2000, 2000)
    async with db.session() as session:
        slots = await session.scalars(
            select(PrizeCapCounter.count).where(
                PrizeCapCounter.activity_id == uuid.UUID(first["id"])
            )
        )
        assert sorted(slots.all()) == [1] * 1000
