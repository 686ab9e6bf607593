"""Event → reward Issued, end to end, under a fixed offered load.

Starts the whole system as ``activity-platform dev`` does (three APIs, three workers, the
reference cash system) on scratch databases of the local PostgreSQL and a unique queue
prefix on the local Redis; creates a coupon prize and a published basic activity
"register → coupon" (automatic issuance) through the HTTP APIs; gives inviters their invite
codes (``GET /v1/me/invite-code`` as each inviter); after a warm-up, ANALYZEs the scratch
databases (as autovacuum does within a minute of a deployment's start: without statistics
the planner may probe the wrong index; see ``support.analyze``). Then, for each rate, drives
``user.registered`` events (each with an inviter's code) OPEN-LOOP at that rate for
``--seconds``, plus a background of ``cash.deposited`` events that no activity uses
(``--deposit-share`` extra), and reports per rate:

- the generator's proof that it kept up: achieved send rate, schedule lag p50/p99/max
  (how late sends were against their slots), its CPU over the send window (% of one core);
- event → Issued latency p50/p99: the reward record's ``issued_at`` minus the event's send
  time, read with SQL from the reward database after the run (matched by user id);
- backlog when the send window ends (records not yet Issued) and how long until all were
  Issued (bounded wait), lost records (accepted registrations without an Issued record),
  duplicated records (more than one per user or per grant key) and duplicate wallet entries.

In the same run and with the same generator it first drives the bare one-INSERT endpoint
(``bench.support.bare_app``) at increasing rates on the idle stack, and ``wrk`` (closed loop,
C) against it; after the rates, ``wrk`` against the bare endpoint and ``POST /v1/events`` for
comparison under the same conditions. Only public HTTP APIs, the CLI and
SQL reads of ``reward_records`` / ``wallet_coupons`` are used, so it keeps working while the
internals change. Everything talks to 127.0.0.1 only; databases and queue keys are dropped
at the end unless ``--keep``.

    .venv/bin/python -m bench.pipeline [--pg-url postgresql://postgres@127.0.0.1:5432/postgres]
        [--redis-url redis://127.0.0.1:6379/0] [--rates 20,50,100,200,400] [--seconds 15]
        [--deposit-share 0.2] [--drain-timeout 60] [--bare-rates 500,1000,2000]
        [--wrk-seconds 10] [--gen-processes 1] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import openloop

TENANT = "bench-pipeline"
APP = "broker-app"


# --------------------------------------------------------------------------- the stack


class Stack:
    """``activity-platform dev`` on scratch databases, plus the bare baseline server."""

    def __init__(self, args: argparse.Namespace) -> None:
        from bench import support

        self.args = args
        self.run = uuid.uuid4().hex[:6]
        base = f"bench_pipe_{os.getpid()}_{self.run}"
        self.names = {
            "activity": f"{base}_activity",
            "referral": f"{base}_referral",
            "reward": f"{base}_reward",
        }
        self.bare_db = f"{base}_bare"
        self.urls = {k: support.database(args.pg_url, n) for k, n in self.names.items()}
        self.prefix = f"bench-pipe-{os.getpid()}-{self.run}"
        self.ports = {k: support.free_port() for k in ("activity", "referral", "reward")}
        self.cash_port = support.free_port()
        self.bare_port = support.free_port()
        self.tmp = tempfile.TemporaryDirectory(prefix="bench-pipeline-")
        self.log_path = Path(self.tmp.name) / "dev.log"
        self.dev: subprocess.Popen[bytes] | None = None
        self.bare: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "ACTIVITY_DATABASE_URL": self.urls["activity"],
                "REFERRAL_DATABASE_URL": self.urls["referral"],
                "REWARD_DATABASE_URL": self.urls["reward"],
                "REDIS_URL": self.args.redis_url,
                "QUEUE_PREFIX": self.prefix,
                "LOG_LEVEL": "WARNING",
            }
        )
        env.pop("REWARD_DEFAULT_CASH_ENDPOINT_URL", None)
        env.pop("CASH_DATABASE_URL", None)
        return env

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def start(self) -> None:
        from bench import support

        argv = [
            *support.cli(),
            "dev",
            "--data-dir",
            str(Path(self.tmp.name) / "data"),
            "--activity-port",
            str(self.ports["activity"]),
            "--referral-port",
            str(self.ports["referral"]),
            "--reward-port",
            str(self.ports["reward"]),
            "--cash-port",
            str(self.cash_port),
            "--tenant",
            TENANT,
        ]
        with self.log_path.open("wb") as log:
            self.dev = subprocess.Popen(
                argv, env=self.env(), stdout=log, stderr=subprocess.STDOUT, cwd=support.ROOT
            )
        try:
            for service in self.ports:
                support.wait_ready(f"{self.url(service)}/readyz", self.dev, timeout=180)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\n--- dev log ---\n{self.log_tail()}") from exc
        support.prepare_bare(support.database(self.args.pg_url, self.bare_db))
        self.bare = support.start_bare(
            support.plain_dsn(support.database(self.args.pg_url, self.bare_db)), self.bare_port
        )
        support.wait_ready(f"http://127.0.0.1:{self.bare_port}/docs", self.bare)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        from bench import support

        if self.bare is not None:
            support.stop(self.bare)
        if self.dev is not None and self.dev.poll() is None:
            self.dev.send_signal(signal.SIGINT)
            try:
                self.dev.wait(30)
            except subprocess.TimeoutExpired:
                self.dev.kill()
                self.dev.wait()
        if self.args.keep:
            print(
                f"kept databases {', '.join(self.names.values())}, {self.names['reward']}_cash, "
                f"{self.bare_db}; queue prefix {self.prefix}",
                file=sys.stderr,
            )
        else:
            names = [*self.names.values(), f"{self.names['reward']}_cash", self.bare_db]
            support.drop_databases(self.args.pg_url, names)
            support.drop_redis_keys(self.args.redis_url, self.prefix)
        self.tmp.cleanup()


# --------------------------------------------------------------------------- SQL reads


async def _issued_count(dsn: str, prefix: str) -> tuple[int, int]:
    from bench import support

    conn = await support.connect(dsn)
    try:
        row = await conn.fetchrow(
            "SELECT count(*) AS records, count(*) FILTER (WHERE lower(status) = 'issued') "
            "AS issued FROM reward_records WHERE tenant_id = $1 AND starts_with(user_id, $2)",
            TENANT,
            prefix,
        )
    finally:
        await conn.close()
    return int(row["records"]), int(row["issued"])


def issued_count(dsn: str, prefix: str) -> tuple[int, int]:
    """(records, Issued records) of the users whose id starts with ``prefix``."""
    return asyncio.run(_issued_count(dsn, prefix))


async def _outcome(dsn: str, prefix: str) -> dict[str, Any]:
    from bench import support

    conn = await support.connect(dsn)
    try:
        records = await conn.fetch(
            "SELECT user_id, status, issued_at, grant_key FROM reward_records "
            "WHERE tenant_id = $1 AND starts_with(user_id, $2)",
            TENANT,
            prefix,
        )
        wallet = await conn.fetch(
            "SELECT user_id, record_id FROM wallet_coupons "
            "WHERE tenant_id = $1 AND starts_with(user_id, $2)",
            TENANT,
            prefix,
        )
    finally:
        await conn.close()
    return {"records": [dict(r) for r in records], "wallet": [dict(w) for w in wallet]}


def outcome(dsn: str, prefix: str) -> dict[str, Any]:
    return asyncio.run(_outcome(dsn, prefix))


# --------------------------------------------------------------------------- one rate


def plan_for(stack: Stack, args: argparse.Namespace, **kw: Any) -> openloop.Plan:
    rate = kw["rate"]
    return openloop.Plan(
        host="127.0.0.1",
        start_wall=time.time() + args.lead_seconds,
        processes=args.gen_processes,
        connections=max(4, min(64, int(rate / 20) + 4)),
        max_connections=args.max_connections,
        nice=args.gen_nice,
        **kw,
    )


def run_rate(
    stack: Stack, args: argparse.Namespace, rate: float, codes: list[str], backend: str
) -> dict[str, Any]:
    from bench import support

    tag = f"r{int(rate)}x{uuid.uuid4().hex[:6]}"
    prefix = f"{tag}-u"
    dsn = support.plain_dsn(stack.urls["reward"])
    mix = {
        "kind": "pipeline",
        "tag": tag,
        "deposit_share": args.deposit_share,
        "invite_codes": codes,
        "occurred_at": datetime.now(UTC).isoformat(),
    }
    plan = plan_for(
        stack,
        args,
        port=stack.ports["activity"],
        path="/v1/events",
        token=backend,
        rate=rate * (1 + args.deposit_share),
        seconds=args.seconds,
        mix=mix,
        drain_timeout=args.drain_timeout,
    )
    running = openloop.start(plan)
    window_end = plan.start_wall + plan.seconds
    time.sleep(max(0.0, window_end - time.time()))
    records_at_end, issued_at_end = issued_count(dsn, prefix)
    # Poll the reward database while the generator still reads its last answers; until it
    # reports which registrations were accepted, every one sent is expected.
    planned = openloop.registrations(plan)
    gen: dict[str, Any] | None = None
    accepted: set[str] = set()
    drained_at: float | None = None
    deadline = window_end + args.drain_timeout
    while True:
        if gen is None:
            gen = running.try_collect()
            if gen is not None:
                accepted = {u for u, _, status in gen["registered"] if 200 <= status < 300}
        expected = len(accepted) if gen is not None else planned
        _, issued = issued_count(dsn, prefix)
        if drained_at is None and issued >= expected:
            drained_at = time.time()
        if drained_at is not None and gen is not None:
            break
        if time.time() > deadline:
            if gen is None:
                gen = running.collect()
                accepted = {u for u, _, status in gen["registered"] if 200 <= status < 300}
            break
        time.sleep(0.25)
    expected = len(accepted)
    result = outcome(dsn, prefix)
    sent_at = {user: sent for user, sent, _ in gen["registered"]}
    per_user: dict[str, int] = {}
    per_grant: dict[str, int] = {}
    latencies = []
    issued_users = set()
    for record in result["records"]:
        per_user[record["user_id"]] = per_user.get(record["user_id"], 0) + 1
        per_grant[record["grant_key"]] = per_grant.get(record["grant_key"], 0) + 1
        if str(record["status"]).lower() == "issued" and record["issued_at"] is not None:
            issued_users.add(record["user_id"])
            if record["user_id"] in sent_at:
                latencies.append(record["issued_at"].timestamp() - sent_at[record["user_id"]])
    wallet_per_record: dict[Any, int] = {}
    wallet_per_user: dict[str, int] = {}
    for entry in result["wallet"]:
        wallet_per_record[entry["record_id"]] = wallet_per_record.get(entry["record_id"], 0) + 1
        wallet_per_user[entry["user_id"]] = wallet_per_user.get(entry["user_id"], 0) + 1
    registrations = len(gen["registered"])
    return {
        "rate": rate,
        "prefix": prefix,
        "gen": gen,
        "registrations": registrations,
        "accepted": expected,
        "issued": len(issued_users & accepted),
        "backlog_at_end": expected - issued_at_end,
        "records_at_end": records_at_end,
        "drain_s": (drained_at - window_end) if drained_at is not None else None,
        "lost": len(accepted - issued_users),
        "dup_records": sum(n - 1 for n in per_user.values() if n > 1)
        + sum(n - 1 for n in per_grant.values() if n > 1),
        "dup_wallet": sum(n - 1 for n in wallet_per_record.values() if n > 1)
        + sum(n - 1 for n in wallet_per_user.values() if n > 1),
        "wallet_entries": len(result["wallet"]),
        "lat_p50_ms": support.percentile(latencies, 50) * 1000,
        "lat_p99_ms": support.percentile(latencies, 99) * 1000,
        "lat_max_ms": max(latencies) * 1000 if latencies else float("nan"),
    }


def settle(stack: Stack, row: dict[str, Any], timeout: float) -> None:
    """Waits (bounded) until the records of an earlier rate are all Issued, so its backlog
    does not load the next rate."""
    from bench import support

    dsn = support.plain_dsn(stack.urls["reward"])
    deadline = time.monotonic() + timeout
    started = time.monotonic()
    issued = 0
    while time.monotonic() < deadline:
        _, issued = issued_count(dsn, row["prefix"])
        if issued >= row["accepted"]:
            break
        time.sleep(0.5)
    print(
        f"  settled {row['rate']:g} reg/s: {issued}/{row['accepted']} Issued after "
        f"{time.monotonic() - started:.0f} s more",
        flush=True,
    )


def warm_up(stack: Stack, args: argparse.Namespace, codes: list[str], backend: str) -> None:
    """A few registrations through the whole path before anything is timed; fails loudly
    when the pipeline does not issue at all."""
    from bench import support

    warm = argparse.Namespace(**{**vars(args), "seconds": 2.0, "drain_timeout": 60.0})
    result = run_rate(stack, warm, 10, codes, backend)
    if result["issued"] < result["accepted"] or not result["accepted"]:
        raise RuntimeError(
            f"warm-up: {result['issued']} of {result['accepted']} registrations issued "
            f"(statuses {result['gen']['status']}); the pipeline does not work end to end\n"
            f"--- dev log ---\n{stack.log_tail()}"
        )
    print(
        f"warm-up: {result['accepted']} registrations, all Issued "
        f"(p50 {support.fmt(result['lat_p50_ms'], 0)} ms)",
        flush=True,
    )


def run_bare(stack: Stack, args: argparse.Namespace, rate: float) -> dict[str, Any]:
    plan = plan_for(
        stack,
        args,
        port=stack.bare_port,
        path="/events",
        token="",
        rate=rate,
        seconds=args.bare_seconds,
        mix={"kind": "deposit", "tag": f"b{int(rate)}x{uuid.uuid4().hex[:6]}"},
        drain_timeout=30.0,
    )
    return openloop.start(plan).collect()


# --------------------------------------------------------------------------- report


def bottleneck(gen: dict[str, Any], max_connections: int) -> str:
    """What limited this run, as the generator sees it: nothing (it sent at the offered rate
    with CPU to spare), the server (every connection waiting for an answer, so sends had to
    wait), or the generator itself (CPU). Schedule lag with low generator CPU on a shared
    machine is waiting for a CPU, not the generator's own work."""
    capped = gen["peak_in_flight"] >= max_connections * gen["processes"]
    on_rate = gen["send_rate"] >= 0.98 * gen["target_rate"]
    busy = gen["gen_cpu_pct"] >= 50 * gen["processes"]
    if on_rate and not busy and not capped:
        return "none" if gen["lag_p99_ms"] < 20 else "none (lag: shared CPU)"
    reasons = []
    if capped:
        reasons.append(f"server: all {max_connections * gen['processes']} connections busy")
    if busy:
        reasons.append("generator CPU")
    return ", ".join(reasons or ["behind schedule (shared CPU)"])


def print_report(
    args: argparse.Namespace,
    rows: list[dict[str, Any]],
    bare_rows: list[dict[str, Any]],
    wrk_rows: list[tuple[str, dict[str, Any]]],
) -> None:
    from bench import support, wrk

    f = support.fmt
    nice = rows[0]["gen"]["nice"] if rows else 0
    print()
    print(
        f"pipeline: user.registered (invite code) → coupon Issued, open loop, {args.seconds:g} s "
        f"per rate, +{args.deposit_share:.0%} cash.deposited background, "
        f"{args.gen_processes} generator process(es) at nice {nice}, "
        f"{os.cpu_count()} CPUs"
    )
    print(
        f"{'reg/s':>6} {'sent/s':>8} {'gen CPU':>8} {'lag p99':>8} {'lag max':>8} {'post p99':>9} "
        f"{'iss p50':>8} {'iss p99':>8} {'backlog':>8} {'drain s':>8} {'lost':>5} "
        f"{'dup rec':>8} {'dup wal':>8} {'non-2xx':>8}  sends limited by"
    )
    for r in rows:
        g = r["gen"]
        non_ok = g["sent"] - g["ok"]
        drain = f(r["drain_s"], 1) if r["drain_s"] is not None else f">{args.drain_timeout:g}"
        print(
            f"{r['rate']:>6g} {g['send_rate']:>8.1f} {f(g['gen_cpu_pct']):>7}% "
            f"{f(g['lag_p99_ms']):>8} {f(g['lag_max_ms']):>8} {f(g['response_p99_ms']):>9} "
            f"{f(r['lat_p50_ms'], 0):>8} {f(r['lat_p99_ms'], 0):>8} {r['backlog_at_end']:>8} "
            f"{drain:>8} {r['lost']:>5} {r['dup_records']:>8} {r['dup_wallet']:>8} "
            f"{non_ok:>8}  {bottleneck(g, args.max_connections)}"
        )
    print(
        "  reg/s: offered registrations/s; sent/s: all requests/s actually sent (incl. "
        "deposits);\n  gen CPU: generator CPU over the send window, % of one core; lag p99/max: "
        "ms sends were late vs schedule;\n  post p99: ms to the HTTP answer; iss p50/p99: ms "
        "from send to issued_at; backlog: accepted\n  registrations not Issued when the send "
        "window ended; drain s: from then until all Issued (bounded wait);\n  lost: accepted "
        "registrations without an Issued record after that wait; dup rec: extra records per\n"
        "  user or grant key; dup wal: extra wallet coupons per record or user; non-2xx: "
        "requests refused or unanswered."
    )
    late = [r for r in rows if r["lost"]]
    for r in late:
        print(
            f"  {r['rate']:g} reg/s: {r['accepted'] - r.get('final_issued', 0)} of "
            f"{r['accepted']} still not Issued at the end of the run"
        )
    print()
    print(
        "bare FastAPI + one asyncpg INSERT, same generator, same run, open loop "
        "(before the rates, stack idle):"
    )
    print(
        f"{'offered/s':>10} {'sent/s':>8} {'2xx/s':>8} {'gen CPU':>8} {'lag p99':>8} "
        f"{'resp p50':>9} {'resp p99':>9} {'peak conns':>11}  sends limited by"
    )
    for b in bare_rows:
        print(
            f"{b['target_rate']:>10g} {b['send_rate']:>8.1f} {b['ok_response_rate']:>8.1f} "
            f"{f(b['gen_cpu_pct']):>7}% {f(b['lag_p99_ms']):>8} {f(b['response_p50_ms'], 2):>9} "
            f"{f(b['response_p99_ms'], 2):>9} {b['peak_in_flight']:>11}  "
            f"{bottleneck(b, args.max_connections)}"
        )
    if wrk_rows:
        print()
        print(wrk.HEADER)
        for label, r in wrk_rows:
            print(wrk.describe(label, r))
        print(
            f"  wrk -t{args.wrk_threads} -c{args.wrk_connections} -d{args.wrk_seconds}s, "
            "unique event_id per request (Lua)"
        )


# --------------------------------------------------------------------------- main


def run_wrk(args: argparse.Namespace, url: str, bearer: str = "") -> dict[str, Any]:
    from bench import wrk

    return wrk.run_wrk(
        url,
        bearer,
        seconds=args.wrk_seconds,
        threads=args.wrk_threads,
        connections=args.wrk_connections,
    )


def orchestrate(args: argparse.Namespace) -> None:
    from bench import support, wrk

    support.require_local(args.pg_url, args.redis_url)
    rates = [float(r) for r in args.rates.split(",") if r.strip()]
    peak = max(rates) * (1 + args.deposit_share)
    bare_rates = (
        [float(r) for r in args.bare_rates.split(",") if r.strip()]
        if args.bare_rates
        else [peak, 2 * peak, 4 * peak]
    )
    if not args.no_wrk:
        wrk.wrk_binary()
    stack = Stack(args)
    rows: list[dict[str, Any]] = []
    bare_rows: list[dict[str, Any]] = []
    wrk_rows: list[tuple[str, dict[str, Any]]] = []
    backend = support.token(TENANT, "service", "broker-backend")
    try:
        print("starting the stack (activity-platform dev) …", flush=True)
        stack.start()
        codes = support.set_up(
            {name: stack.url(name) for name in stack.ports}, TENANT, args.inviters
        )
        print(f"activity published; {len(codes)} inviters with invite codes", flush=True)
        warm_up(stack, args, codes, backend)
        support.analyze(list(stack.urls.values()))
        bare_url = f"http://127.0.0.1:{stack.bare_port}/events"
        events_url = f"{stack.url('activity')}/v1/events"
        # The baseline first, on an idle stack: what this generator (and wrk) can drive.
        for rate in bare_rates:
            bare_rows.append(run_bare(stack, args, rate))
            b = bare_rows[-1]
            print(f"  bare {rate:g}/s: {b['ok_response_rate']:.1f} 2xx/s", flush=True)
        if not args.no_wrk:
            wrk_rows.append(("bare FastAPI + asyncpg (idle)", run_wrk(args, bare_url)))
        for rate in rates:
            if rows and rows[-1]["lost"]:
                settle(stack, rows[-1], args.settle_timeout)
            row = run_rate(stack, args, rate, codes, backend)
            rows.append(row)
            g = row["gen"]
            print(
                f"  {rate:g} reg/s: sent {g['send_rate']:.1f}/s, Issued {row['issued']}/"
                f"{row['accepted']}, backlog at end {row['backlog_at_end']}, "
                f"p99 {support.fmt(row['lat_p99_ms'], 0)} ms",
                flush=True,
            )
        if rows and rows[-1]["lost"]:
            settle(stack, rows[-1], args.settle_timeout)
        for row in rows:
            _, row["final_issued"] = issued_count(
                support.plain_dsn(stack.urls["reward"]), row["prefix"]
            )
        if not args.no_wrk:
            # Both endpoints under the same conditions (after the rates; workers may still
            # be draining): wrk's closed loop, for comparison.
            wrk_rows.append(("bare FastAPI + asyncpg (end)", run_wrk(args, bare_url)))
            wrk_rows.append(("activity POST /v1/events (end)", run_wrk(args, events_url, backend)))
    finally:
        stack.stop()
    print_report(args, rows, bare_rows, wrk_rows)
    print(
        "\nNote: the generator, the stack, PostgreSQL and Redis share this machine's "
        f"{os.cpu_count()} CPUs; numbers are for this machine only."
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--rates", default="20,50,100,200,400", help="registrations per second")
    parser.add_argument("--seconds", type=float, default=15.0, help="send window per rate")
    parser.add_argument(
        "--deposit-share", type=float, default=0.2, help="extra cash.deposited per registration"
    )
    parser.add_argument("--inviters", type=int, default=20)
    parser.add_argument(
        "--drain-timeout", type=float, default=60.0, help="wait for Issued after the window"
    )
    parser.add_argument(
        "--bare-rates", default="", help="open-loop rates for the bare endpoint (default: 1/2/4x)"
    )
    parser.add_argument("--bare-seconds", type=float, default=5.0)
    parser.add_argument("--gen-processes", type=int, default=1)
    parser.add_argument("--max-connections", type=int, default=2048, help="per generator process")
    parser.add_argument(
        "--settle-timeout",
        type=float,
        default=120.0,
        help="before the next rate, wait for the previous rate's records to be Issued",
    )
    parser.add_argument(
        "--gen-nice", type=int, default=-10, help="generator priority (negative: ahead)"
    )
    parser.add_argument("--lead-seconds", type=float, default=2.0, help="generator start-up")
    parser.add_argument("--wrk-seconds", type=int, default=10)
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument("--wrk-connections", type=int, default=32)
    parser.add_argument("--no-wrk", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the scratch databases")
    args = parser.parse_args()
    if args.seconds * max(float(r) for r in args.rates.split(",")) > openloop.MAX_REQUESTS:
        parser.error("rate x seconds is too large")
    orchestrate(args)


if __name__ == "__main__":
    main()
