"""Shared plumbing of the HTTP benchmarks: the bare one-INSERT baseline server, scratch
databases, child processes and their CPU time, readiness checks.

The baseline runs in its own process: ``python -m bench.support bare --dsn … --port …``.
"""

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

BARE_TABLE_SQL = (
    "CREATE TABLE IF NOT EXISTS bare_events (event_id text PRIMARY KEY, "
    "payload jsonb NOT NULL, received_at timestamptz NOT NULL DEFAULT now())"
)


# --------------------------------------------------------------------------- bare server


def bare_app(dsn: str) -> Any:
    """The baseline: parse the JSON body, one asyncpg INSERT, answer 202."""
    from contextlib import asynccontextmanager

    import asyncpg
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(_: Any):  # type: ignore[no-untyped-def]
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


def start_bare(dsn: str, port: int, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """The baseline server as its own process (``bare_events`` must exist: ``prepare_bare``)."""
    return subprocess.Popen(
        [sys.executable, "-m", "bench.support", "bare", "--dsn", dsn, "--port", str(port)],
        cwd=ROOT,
        env=env or dict(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


# --------------------------------------------------------------------------- databases


def asyncpg_url(url: str) -> str:
    """``postgresql://`` or ``postgresql+asyncpg://`` → the SQLAlchemy asyncpg form."""
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


def plain_dsn(url: str) -> str:
    """Any SQLAlchemy URL → the ``postgresql://`` DSN asyncpg itself takes."""
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def database(server_url: str, name: str) -> str:
    from sqlalchemy.engine import make_url

    return (
        make_url(asyncpg_url(server_url)).set(database=name).render_as_string(hide_password=False)
    )


def require_local(pg_url: str, redis_url: str) -> None:
    from sqlalchemy.engine import make_url

    redis_host = redis_url.split("//", 1)[1].split("@")[-1].split(":")[0].split("/")[0]
    if make_url(pg_url).host not in LOCAL_HOSTS or redis_host not in LOCAL_HOSTS:
        raise SystemExit("benchmarks only talk to 127.0.0.1")


async def _create(url: str, statements: Sequence[str]) -> None:

    from service_kit.migrations import ensure_database

    await ensure_database(asyncpg_url(url))
    conn = await connect(plain_dsn(url))
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


def analyze(urls: Sequence[str]) -> None:
    """ANALYZE every table of these databases. A scratch database's tables have no
    statistics until autovacuum's first pass (up to a minute after they fill; never on a
    server with autovacuum off): until then the planner guesses each table holds a few rows
    and may probe the wrong index. A deployment that has run for a minute has them; a
    benchmark of its steady state needs them too."""

    async def run() -> None:
        for url in urls:
            conn = await connect(plain_dsn(url))
            try:
                await conn.execute("ANALYZE")
            finally:
                await conn.close()

    asyncio.run(run())


def prepare_bare(url: str) -> None:
    """Creates the database if missing, and the baseline's ``bare_events`` table in it."""
    asyncio.run(_create(url, [BARE_TABLE_SQL]))


async def connect(dsn: str, patience: float = 30.0) -> Any:
    """An asyncpg connection, retried while the server is out of connection slots (the
    stack under test and other users share it)."""
    import asyncpg

    deadline = time.monotonic() + patience
    while True:
        try:
            return await asyncpg.connect(dsn)
        except (asyncpg.TooManyConnectionsError, asyncpg.CannotConnectNowError, OSError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


def drop_databases(server_url: str, names: Sequence[str]) -> None:

    async def run() -> None:
        conn = await connect(plain_dsn(database(server_url, "postgres")))
        try:
            for name in names:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(run())


def drop_redis_keys(redis_url: str, prefix: str) -> int:
    """Deletes the keys of one queue prefix (scratch stacks share the Redis server): its
    queues and arq's keys of its jobs (``arq:job:``, ``arq:result:``, … + the job id, which
    starts with the prefix), so kept results do not pile up in a shared Redis."""
    import redis

    client = redis.Redis.from_url(redis_url)
    deleted = 0
    try:
        batch: list[bytes] = []
        for pattern in (f"{prefix}*", f"arq:*:{prefix}*"):
            for key in client.scan_iter(match=pattern, count=1000):
                batch.append(key)
                if len(batch) >= 1000:
                    deleted += client.delete(*batch)
                    batch = []
        if batch:
            deleted += client.delete(*batch)
    finally:
        client.close()
    return deleted


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    from activity_platform.embedded import free_port as _free_port

    return _free_port()


def cli() -> list[str]:
    script = Path(sys.executable).parent / "activity-platform"
    return [str(script)] if script.exists() else [sys.executable, "-m", "activity_platform.cli"]


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 90) -> None:
    """Polls ``url`` until it answers at all (any status below 500)."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited early ({process.returncode}) waiting for {url}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready after {timeout:.0f} s")


def stop(process: subprocess.Popen[bytes], timeout: float = 15) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a running process, from ``/proc/<pid>/stat``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def run_measured(argv: Sequence[str], timeout: float) -> tuple[str, str, float, float, int]:
    """Runs a child to completion; returns stdout, stderr, wall seconds, CPU seconds (its
    own rusage from wait4, so nothing else's) and the exit code."""
    import tempfile

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(list(argv), stdout=out, stderr=err)
        deadline = time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                process.kill()
                pid, status, usage = os.wait4(process.pid, 0)
                break
            time.sleep(0.05)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return (
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
            wall,
            usage.ru_utime + usage.ru_stime,
            process.returncode,
        )


# --------------------------------------------------------------------------- public APIs

OPERATOR_PERMISSIONS = ["ActivityCenterFull", "RightsSystemFull"]


def token(
    tenant: str,
    kind: str,
    sub: str,
    *,
    app: str | None = None,
    permissions: list[str] | None = None,
) -> str:
    """A development JWT, as ``activity-platform token`` mints it."""
    from service_kit.auth import CallerKind, encode_token
    from service_kit.config import DEV_JWT_SECRET

    return encode_token(
        os.environ.get("JWT_SECRET", DEV_JWT_SECRET),
        sub=sub,
        tenant_id=tenant,
        kind=CallerKind(kind),
        app_id=app,
        permissions=permissions or [],
    )


def set_up(urls: dict[str, str], tenant: str, inviters: int, app: str = "broker-app") -> list[str]:
    """Over the public APIs: a coupon prize, a published basic activity "register → that
    coupon" (automatic issuance), and the invite codes of ``inviters`` users."""
    import httpx
    from tests.e2e.campaign import publish_campaign

    operator = token(tenant, "operator", "ops-1", permissions=OPERATOR_PERMISSIONS)
    op = {"Authorization": f"Bearer {operator}"}
    with httpx.Client(timeout=30) as http:
        publish_campaign(http, urls, op)
        codes = []
        for n in range(inviters):
            user = {"Authorization": f"Bearer {token(tenant, 'user', f'inviter-{n}', app=app)}"}
            answer = http.get(f"{urls['referral']}/v1/me/invite-code", headers=user)
            if answer.status_code != 200:
                raise RuntimeError(f"invite code: {answer.status_code} {answer.text}")
            codes.append(answer.json()["code"])
    return codes


# --------------------------------------------------------------------------- numbers


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by nearest rank; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, int(round(q / 100 * len(ordered) + 0.5)) - 1))
    return ordered[rank]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def fmt(value: float, digits: int = 1) -> str:
    return "-" if value != value else f"{value:.{digits}f}"  # NaN → "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, allow_abbrev=False)
    sub = parser.add_subparsers(dest="command", required=True)
    bare = sub.add_parser("bare", help="run the baseline server", allow_abbrev=False)
    bare.add_argument("--dsn", required=True)
    bare.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    serve_bare(args.dsn, args.port)


if __name__ == "__main__":
    main()
