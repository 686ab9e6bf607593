"""Reward center batch files: how long does accepting a full batch file take, and reading its
per-line results back?

Creates a scratch reward database on the local PostgreSQL, seeds one coupon prize, then calls
the reward center service as the endpoint does: parse and check every line, store the
accepted lines as issuances and queue one ``reward.create_from_grant`` outbox message per
record (no review), all in one transaction. The activity lookup is answered in process (one
HTTP call per distinct code in production, independent of the file size). Then reads the
batch view (every line with its records). Prints the timings and drops the database.

    .venv/bin/python -m bench.reward_center_batch [--pg-url postgresql+asyncpg://postgres@127.0.0.1:5432/postgres]
        [--lines 5000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from datetime import UTC, datetime

from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from activity_platform.embedded import database_url
from contracts.payloads import IssuanceForm
from reward_service.center import rules
from reward_service.center import service as center
from reward_service.db import OutboxMessage
from reward_service.models import ManualIssuance, Prize
from service_kit.db import Database
from service_kit.migrations import ensure_database, upgrade

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
TENANT = "bench"
CODE = "ACT-BENCH001"


async def drop(pg_url: str, name: str) -> None:
    engine = create_async_engine(
        make_url(pg_url).set(database="postgres"), isolation_level="AUTOCOMMIT"
    )
    async with engine.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await engine.dispose()


async def lookup(code: str) -> center.ActivityInfo | None:
    return center.ActivityInfo(
        code=code,
        name="Bench",
        status="running",
        review_required=False,
        issuance_form=IssuanceForm.automatic,
    )


async def run(db: Database, lines: int, rounds: int) -> None:
    prize_id = uuid.uuid4()
    async with db.session() as session:
        session.add(
            Prize(
                id=prize_id,
                tenant_id=TENANT,
                type="coupon",
                name="Card",
                details={"coupon_type": "market_data", "title": {"en": "Card"}},
                created_by="bench",
            )
        )
    accept: list[float] = []
    view: list[float] = []
    for n in range(rounds):
        data = (
            "user_id,prize_id,remarks\n"
            + "".join(f"u-{n}-{i},{prize_id},line {i}\n" for i in range(lines))
        ).encode()
        started = time.perf_counter()
        async with db.session() as session:
            batch, _ = await center.create_batch(
                session,
                TENANT,
                "operator:bench",
                data,
                activity_code=CODE,
                file_name=None,
                lookup=lookup,
                now=datetime.now(UTC),
            )
        accept.append(time.perf_counter() - started)
        started = time.perf_counter()
        async with db.session() as session:
            shown = await center.batch_view(session, batch)
        view.append(time.perf_counter() - started)
        assert len(shown.lines) == lines and shown.accepted == lines
    async with db.session() as session:
        issuances = await session.scalar(select(func.count()).select_from(ManualIssuance))
        queued = await session.scalar(select(func.count()).select_from(OutboxMessage))
    size = len(data)
    print(f"lines per file           {lines} ({size / 1024:.0f} KiB; limit {rules.MAX_LINES})")
    print(
        f"accept file (median)     {statistics.median(accept) * 1000:.0f} ms "
        f"({lines / statistics.median(accept):.0f} lines/s)  all: "
        + ", ".join(f"{t * 1000:.0f}" for t in accept)
    )
    print(f"read per-line results    {statistics.median(view) * 1000:.0f} ms (median)")
    print(f"issuances stored         {issuances}; record jobs queued {queued}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--lines", type=int, default=rules.MAX_LINES)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if make_url(args.pg_url).host not in LOCAL_HOSTS:
        raise SystemExit("benchmarks only talk to 127.0.0.1")
    lines = max(1, min(args.lines, rules.MAX_LINES))
    rounds = max(1, min(args.rounds, 20))
    name = f"bench_center_{int(time.time())}"
    url = database_url(args.pg_url, name)
    asyncio.run(ensure_database(url))
    try:
        upgrade("reward", url)

        async def go() -> None:
            db = Database(url, pool_size=2)
            try:
                await run(db, lines, rounds)
            finally:
                await db.dispose()

        asyncio.run(go())
    finally:
        asyncio.run(drop(args.pg_url, name))


if __name__ == "__main__":
    main()
