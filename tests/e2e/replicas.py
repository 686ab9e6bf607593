"""Two replicas of every process on one machine: ``activity-platform dev --replicas 2`` (two
API processes sharing each service's listening socket, two workers per service) against one
PostgreSQL and one Redis, a stream of registrations through invite codes (each earning a
coupon and a cash prize), and one replica of each API and worker SIGKILLed midway.

Shared by ``tests/e2e/test_replicas.py`` (small) and ``bench/replicas.py`` (large, with the
throughput of one replica against two); the stack, the campaign, the stream and the count
are ``tests/pipeline_kit.py``'s. What must hold afterwards: every registration has exactly
one binding to its inviter, two grants whose ledger says issued, two issued reward records,
one wallet entry and one payment in the cash system, and each due time of a cron job ran
once.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from activity_platform.embedded import database_url
from tests.pipeline_kit import (
    SERVICES,
    STARTUP_TIMEOUT_SECONDS,
    DevStack,
    Expected,
    Sent,
    Snapshot,
    settle,
    stream_registrations,
)

TENANT = "tenant-replicas"
# A coupon and a cash prize per registration.
EXPECTED = Expected(grants=2, wallet=1, payments=1)


class Stack(DevStack):
    """``dev --replicas N`` on databases of its own on ``server_url`` and a key prefix of
    its own on ``redis_url``; the reconciler runs every ``reconcile_seconds``."""

    def __init__(
        self,
        server_url: str,
        redis_url: str,
        run_id: str,
        replicas: int,
        log_path: Path,
        reconcile_seconds: int = 2,
    ) -> None:
        self.server_url = server_url
        self.redis_url = redis_url
        self.run_id = run_id
        self.prefix = f"rp-{run_id}"
        self.killed_at = 0.0  # wall clock of the kill (``kill_at``)
        self.databases = {
            name: database_url(server_url, f"rp_{run_id}_{name}") for name in SERVICES
        }
        super().__init__(
            tenant=TENANT,
            replicas=replicas,
            log_path=log_path,
            env={
                **{f"{n.upper()}_DATABASE_URL": url for n, url in self.databases.items()},
                "REDIS_URL": redis_url,
                "QUEUE_PREFIX": self.prefix,
                # INFO: every job run logs its id, which is how cron ticks are counted.
                "LOG_LEVEL": "INFO",
                "REWARD_ISSUING_DEADLINE_SECONDS": "10",
                "REWARD_RECONCILE_INTERVAL_SECONDS": str(reconcile_seconds),
            },
        )

    def start(self) -> None:
        """Up when every API answers and every worker of every service has finished its
        start-up (killing a worker that is still importing would prove little, and a
        service with one worker up is not two replicas)."""
        super().start()
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while missing := self.workers_not_ready():
            if time.monotonic() > deadline:
                raise RuntimeError(f"workers not ready: {missing}\n{self.log_tail()}")
            time.sleep(0.3)

    def workers_not_ready(self) -> dict[str, str]:
        """Per service whose workers are not all up: how many of ``replicas`` are. A worker
        is up when it is one of dev's children and has logged "worker ready" (at the end of
        its start-up) under its own pid, so a worker that started and died is not counted."""
        ready: dict[int, str] = {}
        for entry in self._entries():
            if entry.get("msg") == "worker ready" and isinstance(entry.get("pid"), int):
                ready[entry["pid"]] = str(entry.get("service"))
        children = self.children()
        missing = {}
        for service in SERVICES:
            pids = [pid for pid, cmd in children.items() if f" worker {service}" in cmd]
            up = sum(1 for pid in pids if ready.get(pid) == service)
            if up < self.replicas:
                missing[service] = f"{up} of {self.replicas} ready ({len(pids)} running)"
        return missing

    def workers_started(self, marker: str = "") -> int:
        """How many worker starts the log shows (arq's "Starting worker" line at INFO),
        only those whose functions include ``marker`` if given."""
        return sum(
            1 for line in self._log_lines() if "Starting worker for" in line and marker in line
        )

    @property
    def cash_database(self) -> str:
        reward = make_url(self.databases["reward"]).database
        return database_url(self.databases["reward"], f"{reward}_cash")

    def dsn(self, service: str) -> str:
        url = self.databases[service] if service in self.databases else self.cash_database
        return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)

    @property
    def dsns(self) -> dict[str, str]:
        return {name: self.dsn(name) for name in (*SERVICES, "cash")}

    def all_databases(self) -> list[str]:
        return [str(make_url(u).database) for u in (*self.databases.values(), self.cash_database)]

    def cron_starts(self) -> Counter[str]:
        """How many times each due time of this stack's cron jobs ran. A cron job's id is
        ``<prefix>:<name>:<due time in ms>`` (arq runs an id once, whichever worker takes
        it); every run of a job logs one line naming its id (``job <name> ok|error|retry``)."""
        due_time = re.compile(rf"^{re.escape(self.prefix)}:[a-z_]+\.[a-z_.]+:\d+$")
        starts: Counter[str] = Counter()
        for entry in self._entries():
            job_id = entry.get("job_id")
            if isinstance(job_id, str) and due_time.match(job_id):
                starts[job_id] += 1
        return starts

    def _entries(self) -> list[dict[str, Any]]:
        """The JSON lines of the log (dev's own lines are plain text)."""
        found = []
        for line in self._log_lines():
            if not line.startswith("{"):
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict):
                found.append(entry)
        return found


def kill_at(stack: Stack, at: int, killed: list[int]) -> Callable[[int], Awaitable[None]]:
    """A ``before_send`` that SIGKILLs one API and one worker of every service just before
    the ``at``-th registration is sent (dev starts them again); their pids go to
    ``killed``."""

    async def before_send(i: int) -> None:
        if i != at:
            return
        stack.killed_at = time.time()
        for service in SERVICES:
            for kind in ("serve", "worker"):
                pid = stack.kill_one(kind, service)
                assert pid is not None, f"no {kind} {service} to kill: {stack.children()}"
                killed.append(pid)

    return before_send


async def run(
    stack: Stack,
    invited: dict[str, str],
    codes: dict[str, str],
    rate: float,
    *,
    killed: list[int] | None,
    settle_seconds: float,
    stall_seconds: float | None = None,
) -> tuple[Sent, Snapshot | None, float]:
    """Stream (with ``killed`` given, a replica of each API and worker is SIGKILLed when
    half were sent), then count until complete (giving up after ``settle_seconds``, or
    after ``stall_seconds`` without any progress): (what was sent, the final count,
    seconds from the end of the stream until complete)."""
    kill = None if killed is None else kill_at(stack, len(invited) // 2, killed)
    sent = await stream_registrations(stack, invited, codes, rate, before_send=kill)
    shot, took = await settle(
        stack.dsns,
        TENANT,
        invited,
        EXPECTED,
        timeout=settle_seconds,
        stall_seconds=stall_seconds,
        report=lambda shot: print(f"  {shot.progress()}", flush=True),
    )
    return sent, shot, took
