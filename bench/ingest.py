"""Event ingestion: ``POST /v1/events`` of the activity service against a bare FastAPI
endpoint doing one asyncpg INSERT (``bench.support.bare_app``), measured in the same run by
the same generator — ``wrk`` (C, closed loop, a Lua script giving every request its own
``event_id``), whose own CPU is printed so it is visibly not the bottleneck; then the same
while the workers drain a backlog; then the batch endpoint's events per second.

The servers' own CPU per request (from ``/proc``) is printed too: on a shared machine it moves
far less than req/s with the load of other processes.

1. Scratch databases on the local PostgreSQL (activity, referral, reward — migrated by
   ``activity-platform migrate`` — and one for the baseline), a unique queue prefix on the
   local Redis; the three APIs (``activity-platform serve``) and the baseline run as their own
   processes on free 127.0.0.1 ports; no workers yet.
2. wrk against both targets, interleaved rounds: req/s, p50/p99 (``--latency``), the ratio.
3. A coupon prize and a published basic activity "register → coupon" (public APIs), then
   ``--backlog`` ``user.registered`` events (each with an inviter's code) through
   ``POST /v1/events/batch``, 1,000 per request from several concurrent senders: the batch
   ingest rate.
4. The activity, referral and reward workers start on that backlog; while they drain it
   (their CPU and the records Issued during the window are printed as proof), wrk again
   against both targets.

    .venv/bin/python -m bench.ingest [--pg-url postgresql://postgres@127.0.0.1:5432/postgres]
        [--redis-url redis://127.0.0.1:6379/0] [--seconds 10] [--rounds 2] [--threads 2]
        [--connections 32] [--backlog 20000] [--batch-size 1000] [--batch-senders 4]
        [--worker-nice 0] [--keep]

Goals: POST /v1/events >= 70% of bare; >= 50% while the workers drain; batch >= 20,000
events/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from bench import support, wrk

TENANT = "bench"
SERVICES = ("activity", "referral", "reward")
GOAL_RATIO = 0.70
GOAL_RATIO_DRAIN = 0.50
GOAL_BATCH = 20_000


class Stack:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        base = f"bench_ingest_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        self.names = {name: f"{base}_{name}" for name in SERVICES}
        self.bare_db = f"{base}_bare"
        self.urls = {name: support.database(args.pg_url, db) for name, db in self.names.items()}
        self.prefix = base.replace("_", "-")
        self.ports = {name: support.free_port() for name in SERVICES}
        self.bare_port = support.free_port()
        self.apis: dict[str, subprocess.Popen[bytes]] = {}
        self.workers: dict[str, subprocess.Popen[bytes]] = {}
        self.bare: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["ACTIVITY_PLATFORM_DEV"] = "1"  # tokens signed with the development secret
        for name in SERVICES:
            env[f"{name.upper()}_DATABASE_URL"] = self.urls[name]
            env[f"{name.upper()}_URL"] = self.url(name)
        env.update(
            {"REDIS_URL": self.args.redis_url, "QUEUE_PREFIX": self.prefix, "LOG_LEVEL": "WARNING"}
        )
        return env

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def _spawn(self, *argv: str, nice: int = 0) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [*support.cli(), *argv],
            cwd=support.ROOT,
            env=self.env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=(lambda: os.nice(nice)) if nice else None,
        )

    def start_apis(self) -> None:
        migrate = subprocess.run(
            [*support.cli(), "migrate"], cwd=support.ROOT, env=self.env(), capture_output=True
        )
        if migrate.returncode != 0:
            raise RuntimeError(f"migrations failed:\n{migrate.stderr.decode()[-3000:]}")
        for name in SERVICES:
            self.apis[name] = self._spawn("serve", name, "--port", str(self.ports[name]))
        bare_url = support.database(self.args.pg_url, self.bare_db)
        support.prepare_bare(bare_url)
        self.bare = support.start_bare(support.plain_dsn(bare_url), self.bare_port)
        for name in SERVICES:
            support.wait_ready(f"{self.url(name)}/readyz", self.apis[name])
        support.wait_ready(f"http://127.0.0.1:{self.bare_port}/docs", self.bare)

    def start_workers(self) -> None:
        for name in SERVICES:
            self.workers[name] = self._spawn("worker", name, nice=self.args.worker_nice)

    def stop(self) -> None:
        for process in [*self.workers.values(), *self.apis.values(), self.bare]:
            if process is not None:
                support.stop(process)
        names = [*self.names.values(), self.bare_db]
        if self.args.keep:
            print(f"kept databases {', '.join(names)}; queue prefix {self.prefix}", file=sys.stderr)
        else:
            support.drop_databases(self.args.pg_url, names)
            support.drop_redis_keys(self.args.redis_url, self.prefix)


# --------------------------------------------------------------------------- measurements


def wrk_pair(stack: Stack, args: argparse.Namespace, backend: str) -> dict[str, dict]:
    """wrk against both targets in interleaved rounds (drift hits both alike)."""
    assert stack.bare is not None
    targets = {
        "activity POST /v1/events": (
            f"{stack.url('activity')}/v1/events",
            backend,
            stack.apis["activity"].pid,
        ),
        "bare FastAPI + asyncpg": (
            f"http://127.0.0.1:{stack.bare_port}/events",
            "",
            stack.bare.pid,
        ),
    }
    rounds: dict[str, list[dict]] = {label: [] for label in targets}
    # The server process's own CPU per request: unlike req/s, it hardly moves with what
    # else runs on the machine.
    server_cpu = dict.fromkeys(targets, 0.0)
    for _ in range(args.rounds):
        for label, (url, tok, pid) in targets.items():
            before = support.cpu_seconds(pid)
            rounds[label].append(
                wrk.run_wrk(
                    url,
                    tok,
                    seconds=args.seconds,
                    threads=args.threads,
                    connections=args.connections,
                )
            )
            server_cpu[label] += support.cpu_seconds(pid) - before
    results = {}
    for label, parts in rounds.items():
        seconds = sum(p["seconds"] for p in parts)
        requests = sum(p["requests"] for p in parts)
        results[label] = {
            "server_cpu_ms": 1000 * server_cpu[label] / requests if requests else float("nan"),
            "requests": sum(p["requests"] for p in parts),
            "requests_per_s": sum(p["requests"] for p in parts) / seconds,
            "p50_ms": support.median([p["p50_ms"] for p in parts]),
            "p99_ms": max(p["p99_ms"] for p in parts),
            "non_2xx": sum(p["non_2xx"] for p in parts),
            "socket_errors": sum(p["socket_errors"] for p in parts),
            "gen_cpu_pct": sum(p["gen_cpu_pct"] for p in parts) / len(parts),
        }
    return results


async def _post_batches(url: str, backend: str, bodies: list[bytes], senders: int) -> dict:
    import httpx

    headers = {"Authorization": f"Bearer {backend}", "Content-Type": "application/json"}
    pending = iter(range(len(bodies)))
    latencies: list[float] = []
    accepted = 0
    failed = 0
    limits = httpx.Limits(max_connections=senders, max_keepalive_connections=senders)
    async with httpx.AsyncClient(limits=limits, timeout=300) as client:

        async def sender() -> None:
            nonlocal accepted, failed
            for n in pending:
                started = time.perf_counter()
                try:
                    response = await client.post(url, content=bodies[n], headers=headers)
                except httpx.HTTPError:
                    failed += 1
                    continue
                latencies.append(time.perf_counter() - started)
                if response.status_code == 200 or response.status_code == 202:
                    accepted += int(response.json().get("accepted", 0))
                else:
                    failed += 1

        cpu0, started = os.times(), time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(senders)))
        elapsed, cpu1 = time.perf_counter() - started, os.times()
    cpu = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
    return {
        "requests": len(bodies),
        "accepted": accepted,
        "failed_requests": failed,
        "seconds": elapsed,
        "p50_ms": support.percentile(latencies, 50) * 1000,
        "p99_ms": support.percentile(latencies, 99) * 1000,
        "gen_cpu_pct": 100 * cpu / elapsed if elapsed else 0.0,
    }


def post_backlog(stack: Stack, args: argparse.Namespace, backend: str, codes: list[str]) -> dict:
    """``--backlog`` registrations through the batch endpoint; the bodies are encoded before
    the clock starts, so the sender's cost is the HTTP and nothing else."""
    tag = f"bk{uuid.uuid4().hex[:6]}"
    occurred_at = datetime.now(UTC).isoformat()
    bodies = []
    for start in range(0, args.backlog, args.batch_size):
        events = [
            {
                "event_id": f"{tag}-reg-{i}",
                "type": "user.registered",
                "user_id": f"{tag}-u{i}",
                "app_id": "broker-app",
                "occurred_at": occurred_at,
                "invite_code": codes[i % len(codes)],
            }
            for i in range(start, min(args.backlog, start + args.batch_size))
        ]
        bodies.append(json.dumps({"events": events}, separators=(",", ":")).encode())
    result = asyncio.run(
        _post_batches(
            f"{stack.url('activity')}/v1/events/batch", backend, bodies, args.batch_senders
        )
    )
    result["events"] = args.backlog
    result["events_per_s"] = args.backlog / result["seconds"]
    return result


async def _issued(dsn: str) -> int:
    from bench import support

    conn = await support.connect(dsn)
    try:
        value = await conn.fetchval(
            "SELECT count(*) FROM reward_records WHERE tenant_id = $1 AND lower(status) = 'issued'",
            TENANT,
        )
    finally:
        await conn.close()
    return int(value)


def issued(stack: Stack) -> int:
    return asyncio.run(_issued(support.plain_dsn(stack.urls["reward"])))


def wait_for_first_issue(stack: Stack, timeout: float) -> float:
    """Seconds until the workers issued their first record: the drain window must start
    with workers draining, not importing (a worker starts in seconds on an idle machine,
    in tens of seconds on a busy one)."""
    started = time.monotonic()
    while issued(stack) == 0:
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"no record Issued {timeout:.0f} s after the workers started")
        time.sleep(0.5)
    return time.monotonic() - started


def worker_cpu(stack: Stack) -> dict[str, float]:
    cpu = {}
    for name, process in stack.workers.items():
        try:
            cpu[name] = support.cpu_seconds(process.pid)
        except OSError:
            cpu[name] = float("nan")  # exited
    return cpu


# --------------------------------------------------------------------------- report


def print_pair(title: str, results: dict[str, dict], goal: float) -> float:
    print(title)
    print(wrk.HEADER)
    for label, r in results.items():
        print(wrk.describe(label, r))
    ours = results["activity POST /v1/events"]["requests_per_s"]
    bare = results["bare FastAPI + asyncpg"]["requests_per_s"]
    ratio = ours / bare if bare else float("nan")
    verdict = "met" if ratio >= goal else "NOT met"
    print(f"ratio activity/bare: {ratio:.0%} (goal >= {goal:.0%}: {verdict})")
    cpu = {label: r["server_cpu_ms"] for label, r in results.items()}
    print(
        "server process CPU per request: "
        + ", ".join(f"{label} {ms:.3f} ms" for label, ms in cpu.items())
        + f" (bare/activity {cpu['bare FastAPI + asyncpg'] / cpu['activity POST /v1/events']:.0%})"
    )
    return ratio


def orchestrate(args: argparse.Namespace) -> None:
    support.require_local(args.pg_url, args.redis_url)
    wrk.wrk_binary()
    stack = Stack(args)
    backend = support.token(TENANT, "service", "bench-backend")
    drain: dict[str, Any] = {}
    try:
        print("starting the APIs and the baseline …", flush=True)
        stack.start_apis()
        # Warm-up: a short wrk run per target, not counted.
        for url, tok in (
            (f"{stack.url('activity')}/v1/events", backend),
            (f"http://127.0.0.1:{stack.bare_port}/events", ""),
        ):
            wrk.run_wrk(url, tok, seconds=2, threads=args.threads, connections=args.connections)
        print("wrk, no workers running …", flush=True)
        idle = wrk_pair(stack, args, backend)
        codes = support.set_up({name: stack.url(name) for name in SERVICES}, TENANT, 10)
        print(f"posting a backlog of {args.backlog} events in batches …", flush=True)
        api_cpu = support.cpu_seconds(stack.apis["activity"].pid)
        batch = post_backlog(stack, args, backend, codes)
        batch["api_cpu_us"] = (
            1e6 * (support.cpu_seconds(stack.apis["activity"].pid) - api_cpu) / args.backlog
        )
        stack.start_workers()
        started = wait_for_first_issue(stack, timeout=180.0)
        print(f"   workers issuing after {started:.1f} s", flush=True)
        time.sleep(args.drain_start)
        issued_before, cpu_before, wall_before = issued(stack), worker_cpu(stack), time.time()
        print(
            f"wrk while the workers (niceness {args.worker_nice}) drain the backlog …", flush=True
        )
        draining = wrk_pair(stack, args, backend)
        issued_after, cpu_after, wall_after = issued(stack), worker_cpu(stack), time.time()
        window = wall_after - wall_before
        drain = {
            "issued": issued_after - issued_before,
            "issued_total": issued_after,
            "window_s": window,
            "cpu_pct": {
                name: 100 * (cpu_after[name] - cpu_before[name]) / window for name in cpu_after
            },
            "alive": {name: p.poll() is None for name, p in stack.workers.items()},
        }
    finally:
        stack.stop()

    print()
    print(
        f"single events, {args.rounds} interleaved round(s) x {args.seconds} s per target, "
        f"wrk -t{args.threads} -c{args.connections}, {os.cpu_count()} CPUs"
    )
    print_pair("-- no workers running:", idle, GOAL_RATIO)
    print_pair(
        "-- while the activity/referral/reward workers drain the backlog:",
        draining,
        GOAL_RATIO_DRAIN,
    )
    cpu = ", ".join(
        f"{name} {support.fmt(value, 0)}%" + ("" if drain["alive"][name] else " (exited)")
        for name, value in drain["cpu_pct"].items()
    )
    print(
        f"   drain during that window ({drain['window_s']:.0f} s): workers' CPU {cpu}; "
        f"{drain['issued']} records Issued ({drain['issued_total']} of {args.backlog} so far)"
    )
    verdict = "met" if batch["events_per_s"] >= GOAL_BATCH else "NOT met"
    print(
        f"batch: {batch['requests']} x {args.batch_size} events, {args.batch_senders} concurrent "
        f"senders: {batch['events_per_s']:.0f} events/s (goal >= {GOAL_BATCH:,}: {verdict}); "
        f"{batch['accepted']} accepted, {batch['failed_requests']} failed requests; "
        f"p50 {batch['p50_ms']:.0f} ms, p99 {batch['p99_ms']:.0f} ms per batch; "
        f"sender CPU {batch['gen_cpu_pct']:.0f}% of one core; activity API CPU "
        f"{batch['api_cpu_us']:.0f} us per event"
    )
    print(
        "\nNote: wrk, the servers, PostgreSQL and Redis share this machine's "
        f"{os.cpu_count()} CPUs; numbers are for this machine only."
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--seconds", type=int, default=10, help="per wrk run")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved wrk rounds")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--backlog", type=int, default=20_000, help="events queued for the drain")
    parser.add_argument(
        "--worker-nice",
        type=int,
        default=0,
        help="the workers' niceness (as `activity-platform dev --worker-nice`: on shared "
        "cores the APIs answer first)",
    )
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--batch-senders", type=int, default=4)
    parser.add_argument(
        "--drain-start", type=float, default=2.0, help="seconds the workers run before wrk"
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch databases")
    args = parser.parse_args()
    if not 1 <= args.batch_size <= 1000 or args.backlog < 1 or args.backlog > 200_000:
        parser.error("--batch-size 1..1000, --backlog 1..200000")
    orchestrate(args)


if __name__ == "__main__":
    main()
