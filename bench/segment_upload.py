"""Segment bulk upload: how long do 300,000 user ids take, end to end over HTTP?

Creates a scratch database on the local PostgreSQL, migrates it, starts the activity
service in-process (ASGI, no network beyond 127.0.0.1), creates a segment and times:
a full replace with N ids (text/plain and JSON), an add of 1,000, a remove of 1,000, a
replace with half the ids changed, and membership checks. Prints a table and drops the
database.

    .venv/bin/python -m bench.segment_upload [--pg-url postgresql+asyncpg://postgres@127.0.0.1:5432/postgres]
        [--ids 300000] [--checks 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from activity_service.app import create_app
from activity_service.config import ActivitySettings
from service_kit.auth import CallerKind, encode_token
from service_kit.clock import FrozenClock
from service_kit.migrations import ensure_database, upgrade

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
TENANT = "bench"


async def _drop(admin_url: str, name: str) -> None:
    engine = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await engine.dispose()


async def _timed(label: str, call: Callable[[], Awaitable[httpx.Response]], rows: list) -> Any:
    started = time.perf_counter()
    response = await call()
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, response.text
    body = response.json()
    rows.append((label, elapsed, body.get("added"), body.get("removed"), body.get("member_count")))
    return body


async def run(pg_url: str, n: int, checks: int) -> None:
    url = make_url(pg_url)
    if url.host not in LOCAL_HOSTS:
        raise SystemExit("benchmarks only talk to 127.0.0.1")
    name = f"bench_segments_{int(time.time())}"
    db_url = url.set(database=name).render_as_string(hide_password=False)
    admin_url = url.set(database="postgres").render_as_string(hide_password=False)
    await ensure_database(db_url)
    try:
        await asyncio.to_thread(upgrade, "activity", db_url)
        settings = ActivitySettings(database_url=db_url)
        clock = FrozenClock(datetime(2026, 11, 23, 2, 0, tzinfo=UTC))
        app = create_app(settings, clock=clock)
        token = encode_token(
            settings.jwt_secret,
            sub="bench",
            tenant_id=TENANT,
            kind=CallerKind.operator,
            permissions=["ActivityCenterFull"],
        )
        headers = {"Authorization": f"Bearer {token}"}
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app),
                base_url="http://activity.bench",
                timeout=300,
            ) as client,
        ):
            created = await client.post("/v1/segments", json={"name": "bench"}, headers=headers)
            seg = created.json()["id"]
            base = f"/v1/segments/{seg}/members"
            ids = [f"user-{i:08d}" for i in range(n)]
            plain = "\n".join(ids).encode()
            shifted = "\n".join(f"user-{i:08d}" for i in range(n // 2, n + n // 2)).encode()
            rows: list[tuple[str, float, Any, Any, Any]] = []
            ctype = {**headers, "Content-Type": "text/plain"}
            await _timed(
                f"replace {n:,} (text/plain, empty segment)",
                lambda: client.put(base, content=plain, headers=ctype),
                rows,
            )
            await _timed(
                f"replace {n:,} (same ids, no change)",
                lambda: client.put(base, content=plain, headers=ctype),
                rows,
            )
            await _timed(
                f"replace {n:,} (half the ids new)",
                lambda: client.put(base, content=shifted, headers=ctype),
                rows,
            )
            payload = json.dumps(ids).encode()
            jtype = {**headers, "Content-Type": "application/json"}
            await _timed(
                f"replace {n:,} (JSON array)",
                lambda: client.put(base, content=payload, headers=jtype),
                rows,
            )
            extra = "\n".join(f"extra-{i}" for i in range(1000)).encode()
            await _timed(
                "add 1,000", lambda: client.post(f"{base}:add", content=extra, headers=ctype), rows
            )
            await _timed(
                "remove 1,000",
                lambda: client.post(f"{base}:remove", content=extra, headers=ctype),
                rows,
            )
            clock.set(datetime(2026, 11, 24, 2, 0, tzinfo=UTC))
            latencies = []
            for i in range(checks):
                started = time.perf_counter()
                r = await client.get(
                    f"{base}/user-{(i * 7919) % n:08d}", params={"refresh": "5m"}, headers=headers
                )
                latencies.append(time.perf_counter() - started)
                assert r.status_code == 200 and r.json()["member"], r.text
        print(f"\nsegment upload, {n:,} ids, activity service in-process, PostgreSQL {url.host}")
        print(f"{'operation':45} {'seconds':>8} {'added':>9} {'removed':>9} {'members':>9}")
        for label, elapsed, added, removed, members in rows:
            print(f"{label:45} {elapsed:8.2f} {added!s:>9} {removed!s:>9} {members!s:>9}")
        latencies.sort()
        p99 = latencies[max(0, int(len(latencies) * 0.99) - 1)]
        print(
            f"membership check over HTTP: p50 {statistics.median(latencies) * 1000:.1f} ms, "
            f"p99 {p99 * 1000:.1f} ms ({checks} checks)"
        )
    finally:
        await _drop(admin_url, name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pg-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--ids", type=int, default=300_000)
    parser.add_argument("--checks", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(run(args.pg_url, min(args.ids, 2_000_000), min(args.checks, 10_000)))


if __name__ == "__main__":
    main()
