"""Event ingestion throughput: POST /v1/events of the activity service against a bare
FastAPI endpoint doing one asyncpg INSERT, measured in the same run; then the batch
endpoint's events per second.

Both servers run as uvicorn subprocesses on free 127.0.0.1 ports against one scratch
database (created, migrated, dropped); the load comes from a separate process (httpx
async, fixed concurrency, a bounded number of requests). Each target gets a warm-up first.

    .venv/bin/python -m bench.ingest [--pg-url postgresql://postgres@127.0.0.1:5432/postgres]
        [--redis-url redis://127.0.0.1:6379/0] [--requests 5000] [--concurrency 32]
        [--batches 20] [--batch-size 500]

Goal: the activity endpoint reaches at least 70% of the bare endpoint's rate.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

ROOT = Path(__file__).resolve().parents[1]
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
TENANT = "bench"


# --------------------------------------------------------------------------- bare server


def bare_app(dsn: str) -> Any:
    """The baseline: parse the JSON body, one asyncpg INSERT, answer 202."""
    from contextlib import asynccontextmanager

    import asyncpg

    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI):  # type: ignore[no-untyped-def]
        state["pool"] = await asyncpg.create_pool(dsn, min_size=10, max_size=10)
        yield
        await state["pool"].close()

    app = FastAPI(lifespan=lifespan)

    @app.post("/events", status_code=202)
    async def post_event(request: Request) -> JSONResponse:
        body = await request.json()
        async with state["pool"].acquire() as conn:
            await conn.execute(
                "INSERT INTO bare_events (event_id, payload) VALUES ($1, $2::jsonb) "
                "ON CONFLICT DO NOTHING",
                body["event_id"],
                json.dumps(body),
            )
        return JSONResponse({"event_id": body["event_id"], "status": "accepted"}, 202)

    return app


def serve_bare(dsn: str, port: int) -> None:
    import uvicorn

    uvicorn.run(bare_app(dsn), host="127.0.0.1", port=port, log_level="warning", access_log=False)


# --------------------------------------------------------------------------- load generator


def deposit(n: int, run: str) -> dict[str, Any]:
    return {
        "event_id": f"{run}-{n}",
        "type": "cash.deposited",
        "user_id": f"u{n % 1000}",
        "app_id": "broker-app",
        "occurred_at": "2026-12-02T09:30:00+08:00",
        "amount": "1000.00",
        "currency": "HKD",
    }


async def load(url: str, token: str, requests: int, concurrency: int, batch: int) -> dict:
    """POST ``requests`` bodies (single events, or batches of ``batch``) with ``concurrency``
    requests in flight; returns throughput and latency percentiles."""
    import httpx

    run = uuid.uuid4().hex[:8]
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    latencies: list[float] = []
    errors = 0
    counter = iter(range(requests))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=120) as client:

        async def worker() -> None:
            nonlocal errors
            for n in counter:
                if batch:
                    body: Any = {"events": [deposit(n * batch + i, run) for i in range(batch)]}
                else:
                    body = deposit(n, run)
                started = time.perf_counter()
                try:
                    response = await client.post(url, json=body, headers=headers)
                    ok = response.status_code in (200, 202)
                except httpx.HTTPError:
                    ok = False
                latencies.append(time.perf_counter() - started)
                errors += 0 if ok else 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    quantiles = statistics.quantiles(latencies, n=100)
    events = requests * (batch or 1)
    return {
        "requests": requests,
        "events": events,
        "errors": errors,
        "seconds": round(elapsed, 3),
        "requests_per_s": round(requests / elapsed, 1),
        "events_per_s": round(events / elapsed, 1),
        "p50_ms": round(quantiles[49] * 1000, 2),
        "p99_ms": round(quantiles[98] * 1000, 2),
    }


def run_load(args: argparse.Namespace) -> None:
    result = asyncio.run(load(args.url, args.token, args.requests, args.concurrency, args.batch))
    print(json.dumps(result))


# --------------------------------------------------------------------------- orchestration


def _free_port() -> int:
    from activity_platform.embedded import free_port

    return free_port()


def _wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early ({process.returncode}) for {url}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} not ready")


def _loadgen(url: str, token: str, requests: int, concurrency: int, batch: int = 0) -> dict:
    """Runs the load generator in its own process, so it never shares a CPU loop with a
    server, and returns its JSON result."""
    output = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.ingest",
            "load",
            "--url",
            url,
            "--token",
            token,
            "--requests",
            str(requests),
            "--concurrency",
            str(concurrency),
            "--batch",
            str(batch),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if output.returncode != 0:
        raise RuntimeError(f"load generator failed:\n{output.stderr[-3000:]}")
    return dict(json.loads(output.stdout.strip().splitlines()[-1]))


async def _prepare(db_url: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    from service_kit.migrations import ensure_database

    await ensure_database(db_url)
    engine = create_async_engine(db_url)
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "CREATE TABLE IF NOT EXISTS bare_events (event_id text PRIMARY KEY, "
                "payload jsonb NOT NULL, received_at timestamptz NOT NULL DEFAULT now())"
            )
        )
    await engine.dispose()


async def _drop(server_url: str, name: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.engine import make_url
    from sqlalchemy.ext.asyncio import create_async_engine

    admin = create_async_engine(
        make_url(server_url).set(database="postgres"), isolation_level="AUTOCOMMIT"
    )
    async with admin.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await admin.dispose()


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def orchestrate(args: argparse.Namespace) -> None:
    from sqlalchemy.engine import make_url

    from service_kit.auth import CallerKind, encode_token
    from service_kit.config import DEV_JWT_SECRET
    from service_kit.migrations import upgrade

    server = make_url(args.pg_url.replace("postgresql://", "postgresql+asyncpg://", 1))
    redis_host = args.redis_url.split("//", 1)[1].split(":")[0].split("/")[0]
    if server.host not in LOCAL_HOSTS or redis_host not in LOCAL_HOSTS:
        raise SystemExit("benchmarks only talk to 127.0.0.1")
    name = f"bench_ingest_{os.getpid()}"
    db_url = server.set(database=name).render_as_string(hide_password=False)
    asyncio.run(_prepare(db_url))
    upgrade("activity", db_url)
    dsn = server.set(database=name, drivername="postgresql").render_as_string(hide_password=False)

    token = encode_token(
        DEV_JWT_SECRET, sub="bench-backend", tenant_id=TENANT, kind=CallerKind.service
    )
    activity_port, bare_port = _free_port(), _free_port()
    env = {
        **os.environ,
        "ACTIVITY_DATABASE_URL": db_url,
        "REDIS_URL": args.redis_url,
        "QUEUE_PREFIX": f"bench-{os.getpid()}",
        "LOG_LEVEL": "WARNING",
    }
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "activity_platform.cli",
                "serve",
                "activity",
                "--port",
                str(activity_port),
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
        subprocess.Popen(
            [sys.executable, "-m", "bench.ingest", "bare", "--dsn", dsn, "--port", str(bare_port)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
    ]
    try:
        activity_url = f"http://127.0.0.1:{activity_port}"
        bare_url = f"http://127.0.0.1:{bare_port}"
        _wait_ready(f"{activity_url}/healthz", processes[0])
        _wait_ready(f"{bare_url}/docs", processes[1])
        targets = {
            "activity POST /v1/events": (f"{activity_url}/v1/events", token),
            "bare FastAPI + asyncpg": (f"{bare_url}/events", ""),
        }
        results: dict[str, dict] = {}
        for url, tok in targets.values():
            _loadgen(url, tok, args.warmup, args.concurrency)  # warm-up
        # Interleave the measured rounds so drift (autovacuum, caches) hits both alike.
        rounds: dict[str, list[dict]] = {label: [] for label in targets}
        for _ in range(args.rounds):
            for label, (url, tok) in targets.items():
                rounds[label].append(
                    _loadgen(url, tok, args.requests // args.rounds, args.concurrency)
                )
        for label, parts in rounds.items():
            results[label] = {
                "requests": sum(p["requests"] for p in parts),
                "errors": sum(p["errors"] for p in parts),
                "requests_per_s": round(
                    sum(p["requests"] for p in parts) / sum(p["seconds"] for p in parts), 1
                ),
                "p50_ms": round(statistics.median(p["p50_ms"] for p in parts), 2),
                "p99_ms": round(max(p["p99_ms"] for p in parts), 2),
            }
        batch = _loadgen(
            f"{activity_url}/v1/events/batch",
            token,
            args.batches,
            args.batch_concurrency,
            args.batch_size,
        )
    finally:
        for process in processes:
            _stop(process)
        asyncio.run(_drop(args.pg_url.replace("postgresql://", "postgresql+asyncpg://", 1), name))

    print(f"single events: {args.requests} requests per target, concurrency {args.concurrency}")
    print(f"{'target':<28} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for label, r in results.items():
        print(
            f"{label:<28} {r['requests_per_s']:>9} {r['p50_ms']:>8} {r['p99_ms']:>8} "
            f"{r['errors']:>7}"
        )
    ours = results["activity POST /v1/events"]["requests_per_s"]
    bare = results["bare FastAPI + asyncpg"]["requests_per_s"]
    print(f"ratio activity/bare: {ours / bare:.0%} (goal >= 70%)")
    print(
        f"batch: {batch['requests']} x {args.batch_size} events, concurrency "
        f"{args.batch_concurrency}: {batch['events_per_s']} events/s "
        f"(p50 {batch['p50_ms']} ms, p99 {batch['p99_ms']} ms per batch, "
        f"{batch['errors']} errors)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, allow_abbrev=False)
    sub = parser.add_subparsers(dest="command")
    sub_kwargs: dict[str, Any] = {"allow_abbrev": False}

    bare = sub.add_parser("bare", help="(internal) run the baseline server", **sub_kwargs)
    bare.add_argument("--dsn", required=True)
    bare.add_argument("--port", type=int, required=True)

    gen = sub.add_parser("load", help="(internal) run the load generator", **sub_kwargs)
    gen.add_argument("--url", required=True)
    gen.add_argument("--token", default="")
    gen.add_argument("--requests", type=int, default=5000)
    gen.add_argument("--concurrency", type=int, default=32)
    gen.add_argument("--batch", type=int, default=0)

    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--requests", type=int, default=5000, help="per target")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved measured rounds")
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--batch-concurrency", type=int, default=2)
    args = parser.parse_args()
    if args.command == "bare":
        serve_bare(args.dsn, args.port)
    elif args.command == "load":
        run_load(args)
    else:
        orchestrate(args)


if __name__ == "__main__":
    main()
