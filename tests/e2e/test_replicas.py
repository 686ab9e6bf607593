"""Replicas on one machine, small: ``activity-platform dev --replicas 2`` on the suite's
PostgreSQL and Redis, 150 registrations through invite codes (a coupon and a cash prize
each), one API and one worker of every service SIGKILLed when half were sent. Afterwards
every record is Issued and nothing is there twice (bindings, grants, records, wallet
entries, payments), and each due time of the reconciler ran once although two reward
workers schedule it. ``bench/replicas.py`` is the large one (throughput of one against two).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import redis

from service_kit.worker import IN_PROGRESS_LEASE_SECONDS, JOB_TIMEOUT_SECONDS
from tests.e2e.replicas import Stack, run
from tests.infra import Infra, drop_databases
from tests.pipeline_kit import invitations, set_up_campaign

pytestmark = [
    pytest.mark.e2e,
]

REGISTRATIONS = 150
RATE = 50.0
INVITERS = 20
# After the stream the count must keep moving until complete: the jobs the killed workers
# were running are started again by the others when their in-progress lease expires, and
# a try of a delivery commits what it handled within its budget (half the 20 s timeout),
# so nothing may stand still longer than the lease and one such try (and the sweep's few
# seconds). A delivery held longer has been lost. How long the whole backlog takes depends
# on the cores' load (1–2 minutes on a loaded 2-core machine): the overall cap is generous.
STALL_SECONDS = IN_PROGRESS_LEASE_SECONDS + JOB_TIMEOUT_SECONDS + 10
SETTLE_SECONDS = 300


def _drop_keys(redis_url: str, prefix: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        keys = [
            k for pattern in (f"{prefix}:*", f"arq:*:{prefix}:*") for k in client.scan_iter(pattern)
        ]
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])
    finally:
        client.close()


def test_two_replicas_of_everything_one_of_each_killed_nothing_lost_or_twice(
    infra: Infra, tmp_path: Path
) -> None:
    started = time.monotonic()
    log_dir = tmp_path
    stack = Stack(
        server_url=infra.pg_server_url,
        redis_url=infra.redis_url,
        run_id=f"{infra.run_id}e2e",
        replicas=2,
        log_path=log_dir / "dev.log",
    )
    try:
        stack.start()
        codes = set_up_campaign(stack, INVITERS, cash=True)
        invited = invitations(REGISTRATIONS, codes)
        killed: list[int] = []
        sent, shot, took = asyncio.run(
            run(
                stack,
                invited,
                codes,
                RATE,
                killed=killed,
                settle_seconds=SETTLE_SECONDS,
                stall_seconds=STALL_SECONDS,
            )
        )
        report = (
            f"sent in {sent.seconds:.1f}s ({sent.retries} retries), complete {took:.1f}s "
            f"after; {time.monotonic() - started:.0f}s in all; log {stack.log_path}\n"
            + (shot.summary() if shot else "no count")
        )
        print("\n" + report)

        # One API and one worker of each service were killed, and dev started each again.
        assert len(killed) == 6, killed
        exits = stack.exits()
        assert sorted(code for _, code in exits) == [-9] * 6, exits
        assert {name.rsplit("-", 1)[0] for name, _ in exits} == {
            f"{s}-{kind}" for s in ("activity", "referral", "reward") for kind in ("api", "worker")
        }, exits

        # Every registration acknowledged (a request cut by a kill was sent again).
        assert not sent.refused and not sent.given_up, (sent.refused, sent.given_up)
        assert len(sent.acknowledged) == REGISTRATIONS

        # Every invitee: bound once to its inviter, two grants whose ledger says issued, two
        # issued records, one wallet entry, one payment; no key twice anywhere.
        assert shot is not None and not shot.problems(), (
            report + "\n" + "\n".join(shot.problems() if shot else [])
        )

        # Cron: both reward workers (and the one started again) schedule the reconciler
        # every 2 s; a due time's job id is <prefix>:reward.reconcile:<ms>, and each run
        # logs its id once. Every due time ran once, and there were many of them, the
        # kill included: arq enqueues an id once, and a run the killed worker held is not
        # run again when its lease expires (the reconciler has one try; the next tick
        # does its work).
        schedulers = stack.workers_started(f"{stack.prefix}:reward.reconcile")
        assert schedulers >= 3, schedulers
        ticks = {job: n for job, n in stack.cron_starts().items() if ":reward.reconcile:" in job}
        twice = {job: n for job, n in ticks.items() if n > 1}
        assert not twice, f"due times run more than once: {twice} (kill at {stack.killed_at})"
        assert len(ticks) >= 5, ticks
        print(f"reconciler: {len(ticks)} due times, each run once, by {schedulers} schedulers")
    finally:
        stack.stop()
        _cleanup(infra, stack)


def _cleanup(infra: Infra, stack: Stack) -> None:
    urls = {**stack.databases, "cash": stack.cash_database}
    asyncio.run(drop_databases(infra, urls))
    _drop_keys(infra.redis_url, stack.prefix)
