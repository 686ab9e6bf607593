"""Team assists under contention: how many assists per second, and do the constraints hold
when many helpers race for the last slots of the same teams?

Creates a scratch activity database on the local PostgreSQL (migrated, dropped at the end),
one published team activity (10 helpers needed, an "all users" helper reward, assist limit
3) and ``--teams`` forming teams; then ``--helpers`` distinct helpers each try to help
``--tries`` random teams, ``--concurrency`` at a time, through the service as the endpoint
calls it (one transaction per assist). Prints assists per second, the latency percentiles,
the refusals per code, and checks that no team has more helpers than it needs, no helper
more assists than the limit, and exactly one initiator grant per succeeded team.

    .venv/bin/python -m bench.team_assists [--pg-url postgresql+asyncpg://postgres@127.0.0.1:5432/postgres]
        [--teams 200] [--helpers 1000] [--tries 4] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from activity_platform.embedded import database_url
from activity_service.activities.models import Activity
from activity_service.evaluation.models import Grant
from activity_service.teams import service
from activity_service.teams.models import Team, TeamAssist
from service_kit.auth import CallerKind, Principal
from service_kit.db import Database
from service_kit.errors import ProblemError
from service_kit.migrations import ensure_database, upgrade

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
TENANT = "bench"
NEEDED = 10
ASSIST_LIMIT = 3


async def drop(pg_url: str, name: str) -> None:
    engine = create_async_engine(
        make_url(pg_url).set(database="postgres"), isolation_level="AUTOCOMMIT"
    )
    async with engine.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await engine.dispose()


def user(sub: str) -> Principal:
    return Principal(sub=sub, tenant_id=TENANT, kind=CallerKind.user, app_id="bench-app")


async def seed(db: Database, teams: int, now: datetime) -> list[uuid.UUID]:
    activity_id = uuid.uuid4()
    async with db.session() as session:
        session.add(
            Activity(
                id=activity_id,
                tenant_id=TENANT,
                seq=1,
                activity_code="ACT-BENCH001",
                business_code="BIZ-BENCH001",
                kind="team",
                name={"en": "Bench team"},
                state="published",
                starts_at=now - timedelta(days=1),
                ends_at=now + timedelta(days=30),
                attribute="assist",
                issuance_form="automatic",
                config={
                    "form": "assist",
                    "helpers_needed": NEEDED,
                    "initiation_limit": None,
                    "assist_limit": ASSIST_LIMIT,
                    "initiator_prize_id": str(uuid.uuid4()),
                    "helper_rewards": [
                        {"id": "h1", "segment_id": None, "prize_id": str(uuid.uuid4())}
                    ],
                },
                submitter="bench",
                published_at=now,
            )
        )
    ids = []
    for i in range(teams):
        async with db.session() as session:
            started = await service.start_team(session, user(f"i{i}"), activity_id, None, now)
            ids.append(started.team.id)
    return ids


async def run(db: Database, teams: int, helpers: int, tries: int, concurrency: int) -> None:
    now = datetime.now(UTC)
    team_ids = await seed(db, teams, now)
    rng = random.Random(7)
    work = [(f"h{h}", team_id) for h in range(helpers) for team_id in rng.sample(team_ids, tries)]
    rng.shuffle(work)
    outcomes: Counter[str] = Counter()
    latencies: list[float] = []
    queue: asyncio.Queue[tuple[str, uuid.UUID]] = asyncio.Queue()
    for item in work:
        queue.put_nowait(item)

    async def worker() -> None:
        while not queue.empty():
            helper, team_id = queue.get_nowait()
            began = time.perf_counter()
            try:
                async with db.session() as session:
                    await service.assist_team(session, user(helper), team_id, now)
                outcomes["assisted"] += 1
            except ProblemError as refused:
                outcomes[refused.code] += 1
            latencies.append(time.perf_counter() - began)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - began

    async with db.session() as session:
        over = await session.scalar(
            select(func.count()).select_from(Team).where(Team.helpers_count > Team.helpers_needed)
        )
        succeeded = await session.scalar(
            select(func.count()).select_from(Team).where(Team.status == "succeeded")
        )
        assists = await session.scalar(select(func.count()).select_from(TeamAssist))
        per_helper = (
            select(func.count().label("n")).select_from(TeamAssist).group_by(TeamAssist.helper_id)
        ).subquery()
        busiest = await session.scalar(select(func.max(per_helper.c.n)))
        initiator_grants = await session.scalar(
            select(func.count()).select_from(Grant).where(Grant.rule_id == "initiator")
        )
    latencies.sort()
    print(
        f"teams {teams} (need {NEEDED}), helpers {helpers} x {tries} tries, "
        f"concurrency {concurrency}"
    )
    print(
        f"attempts                 {len(work)} in {elapsed:.2f} s "
        f"({len(work) / elapsed:.0f} attempts/s, {outcomes['assisted'] / elapsed:.0f} assists/s)"
    )
    print(
        f"latency ms               p50 {statistics.median(latencies) * 1000:.1f}  "
        f"p95 {latencies[int(len(latencies) * 0.95)] * 1000:.1f}  "
        f"max {latencies[-1] * 1000:.1f}"
    )
    print(f"outcomes                 {dict(sorted(outcomes.items()))}")
    print(
        f"assists stored           {assists}; succeeded teams {succeeded}; "
        f"initiator grants {initiator_grants}"
    )
    print(
        f"teams over their need    {over}; most assists by one helper {busiest} "
        f"(limit {ASSIST_LIMIT})"
    )
    ok = (
        over == 0
        and (busiest or 0) <= ASSIST_LIMIT
        and initiator_grants == succeeded
        and assists == outcomes["assisted"]
    )
    print("constraints hold" if ok else "CONSTRAINT VIOLATED")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--pg-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--teams", type=int, default=200)
    parser.add_argument("--helpers", type=int, default=1000)
    parser.add_argument("--tries", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    if make_url(args.pg_url).host not in LOCAL_HOSTS:
        raise SystemExit("benchmarks only talk to 127.0.0.1")
    teams = max(1, min(args.teams, 5_000))
    helpers = max(1, min(args.helpers, 20_000))
    tries = max(1, min(args.tries, teams))
    concurrency = max(1, min(args.concurrency, 64))
    name = f"bench_teams_{int(time.time())}"
    url = database_url(args.pg_url, name)
    asyncio.run(ensure_database(url))
    try:
        upgrade("activity", url)

        async def go() -> None:
            db = Database(url, pool_size=concurrency)
            try:
                await run(db, teams, helpers, tries, concurrency)
            finally:
                await db.dispose()

        asyncio.run(go())
    finally:
        asyncio.run(drop(args.pg_url, name))


if __name__ == "__main__":
    main()
