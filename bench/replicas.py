"""End-to-end capacity with one and with two replicas of every API and worker, and
exactly-once under a replica kill.

For each replica count, ``activity-platform dev --replicas N`` on the local PostgreSQL and
Redis (databases and a key prefix of its own, dropped at the end), a registration campaign
(coupon + cash prize), and ``--registrations`` registrations through invite codes sent at
``--rate`` per second (above one replica's capacity, so the backlog shows the capacity):
capacity = registrations / seconds from the first send until every one has its binding,
two issued records, a wallet entry and a payment. With ``--kill`` one replica of each API
and worker is SIGKILLed when half were sent (only meaningful with 2 replicas).

    .venv/bin/python -m bench.replicas [--pg-url postgresql://postgres@127.0.0.1:5432/postgres]
        [--redis-url redis://127.0.0.1:6379/0] [--replicas 1 2] [--registrations 3000]
        [--rate 400] [--kill]

Needs the cores: on a 2-core machine two replicas of six processes only share the same two
cores (the printed core count says what the numbers mean).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import uuid
from pathlib import Path

from tests.e2e.replicas import Stack, run
from tests.pipeline_kit import invitations, set_up_campaign

from bench.support import drop_databases, drop_redis_keys, require_local


def measure(args: argparse.Namespace, replicas: int, kill: bool) -> dict[str, object]:
    log_dir = Path(tempfile.mkdtemp(prefix=f"bench-replicas-{replicas}-"))
    stack = Stack(
        server_url=args.pg_url,
        redis_url=args.redis_url,
        run_id=uuid.uuid4().hex[:8],
        replicas=replicas,
        log_path=log_dir / "dev.log",
    )
    try:
        stack.start()
        codes = set_up_campaign(stack, inviters=50, cash=True)
        invited = invitations(args.registrations, codes)
        killed: list[int] = []
        sent, found, took = asyncio.run(
            run(
                stack,
                invited,
                codes,
                args.rate,
                killed=killed if kill else None,
                settle_seconds=args.settle_seconds,
            )
        )
        seconds = sent.seconds + took  # first send until every registration is complete
        load = os.getloadavg()  # the machine is shared: the numbers mean little without it
        twice = {job: n for job, n in stack.cron_starts().items() if n > 1}
        return {
            "replicas": replicas,
            "killed": len(killed),
            "send_s": sent.seconds,
            "retries": sent.retries,
            "capacity": args.registrations / seconds,
            "problems": found.problems() if found else ["no count"],
            "cron_twice": twice,
            "log": str(stack.log_path),
            "load": " ".join(f"{x:.1f}" for x in load),
        }
    finally:
        stack.stop()
        drop_databases(args.pg_url, stack.all_databases())
        drop_redis_keys(args.redis_url, stack.prefix)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--registrations", type=int, default=3000)
    parser.add_argument("--rate", type=float, default=400.0)
    parser.add_argument("--settle-seconds", type=float, default=600.0)
    parser.add_argument("--kill", action="store_true")
    args = parser.parse_args()
    require_local(args.pg_url, args.redis_url)
    rows = [measure(args, n, args.kill and n > 1) for n in args.replicas]
    print(f"\n{os.cpu_count()} cores; {args.registrations} registrations sent at {args.rate}/s")
    print(
        f"{'replicas':>8} {'capacity/s':>11} {'vs 1':>6} {'killed':>6} {'retries':>8} "
        f"{'load 1/5/15 min':>16} problems"
    )
    base = float(rows[0]["capacity"])  # type: ignore[arg-type]
    for row in rows:
        capacity = float(row["capacity"])  # type: ignore[arg-type]
        problems = list(row["problems"]) + (  # type: ignore[call-overload]
            [f"cron ran twice: {row['cron_twice']}"] if row["cron_twice"] else []
        )
        print(
            f"{row['replicas']:>8} {capacity:11.1f} {capacity / base:6.2f} {row['killed']:>6} "
            f"{row['retries']:>8} {row['load']:>16} "
            f"{'; '.join(problems) or 'none (0 lost, 0 duplicated)'}"
        )


if __name__ == "__main__":
    main()
