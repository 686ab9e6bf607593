"""Two replicas of every process on one machine: ``activity-platform dev --replicas 2`` (two
API processes sharing each service's listening socket, two workers per service) against one
PostgreSQL and one Redis, a stream of registrations through invite codes (each earning a
coupon and a cash prize), and one replica of each API and worker SIGKILLed midway.

Shared by ``tests/e2e/test_replicas.py`` (small) and ``bench/replicas.py`` (large, with the
throughput of one replica against two). What must hold afterwards: every registration has
exactly one binding to its inviter, two grants, two issued reward records, one wallet entry
and one payment in the cash system, and each due time of a cron job ran once.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy.engine import make_url

from activity_platform.embedded import database_url, free_port
from service_kit.auth import CallerKind, encode_token
from service_kit.config import DEV_JWT_SECRET

SERVICES = ("activity", "referral", "reward")
TENANT = "tenant-replicas"
APP_ID = "broker-app"
OPERATOR_PERMISSIONS = ["ActivityCenterFull", "RightsSystemFull"]
STARTUP_TIMEOUT_SECONDS = 180.0


@dataclass
class Stack:
    """``dev --replicas N`` on databases and a key prefix of its own."""

    server_url: str
    redis_url: str
    run_id: str
    replicas: int
    log_path: Path
    reconcile_seconds: int = 2
    ports: dict[str, int] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.ports = {name: free_port() for name in SERVICES}
        self.databases = {
            name: database_url(self.server_url, f"rp_{self.run_id}_{name}") for name in SERVICES
        }
        self.prefix = f"rp-{self.run_id}"

    @property
    def urls(self) -> dict[str, str]:
        return {name: f"http://127.0.0.1:{port}" for name, port in self.ports.items()}

    def dsn(self, service: str) -> str:
        url = self.databases[service] if service in self.databases else self.cash_database
        return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)

    @property
    def cash_database(self) -> str:
        reward = make_url(self.databases["reward"]).database
        return database_url(self.databases["reward"], f"{reward}_cash")

    def start(self) -> None:
        env = dict(os.environ)
        env.update(
            {
                **{f"{n.upper()}_DATABASE_URL": url for n, url in self.databases.items()},
                **{f"{n.upper()}_WORKER_METRICS_PORT": str(free_port()) for n in SERVICES},
                "REDIS_URL": self.redis_url,
                "QUEUE_PREFIX": self.prefix,
                # INFO: arq logs every job it starts, which is how cron ticks are counted.
                "LOG_LEVEL": "INFO",
                "REWARD_ISSUING_DEADLINE_SECONDS": "10",
                "REWARD_RECONCILE_INTERVAL_SECONDS": str(self.reconcile_seconds),
            }
        )
        env.pop("REWARD_DEFAULT_CASH_ENDPOINT_URL", None)  # dev's reference cash system
        argv = [sys.executable, "-m", "activity_platform.cli", "dev"]
        argv += ["--data-dir", str(self.log_path.parent), "--replicas", str(self.replicas)]
        argv += ["--cash-port", str(free_port()), "--tenant", TENANT]
        for name, port in self.ports.items():
            argv += [f"--{name}-port", str(port)]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        self._wait_ready()

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        pending = dict(self.urls)
        while pending and time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"dev exited early:\n{self.log_tail()}")
            for name, url in list(pending.items()):
                try:
                    if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                        pending.pop(name)
                except httpx.HTTPError:
                    pass
            time.sleep(0.5)
        if pending:
            raise RuntimeError(f"not ready: {sorted(pending)}\n{self.log_tail()}")
        # Every replica up, not only the first to answer: wait for the children to settle.
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while len(self.children()) < 2 * len(SERVICES) * self.replicas + 1:
            if time.monotonic() > deadline:
                raise RuntimeError(f"children missing: {self.children()}\n{self.log_tail()}")
            time.sleep(0.5)

    def children(self) -> dict[int, str]:
        """pid → command line of dev's children (the processes it supervises)."""
        assert self.process is not None
        found = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                if ppid == self.process.pid:
                    found[int(entry.name)] = (
                        (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                    )
            except (OSError, IndexError, ValueError):
                continue
        return found

    def kill_one(self, kind: str, service: str) -> int:
        """SIGKILL one replica (``serve`` or ``worker``) of a service; dev starts it again."""
        for pid, cmdline in sorted(self.children().items()):
            if f" {kind} {service}" in cmdline:
                os.kill(pid, signal.SIGKILL)
                return pid
        raise AssertionError(f"no {kind} {service} running: {self.children()}")

    def token(self, kind: str, sub: str, permissions: list[str] | None = None) -> dict[str, str]:
        jwt = encode_token(
            DEV_JWT_SECRET,
            sub=sub,
            tenant_id=TENANT,
            kind=CallerKind(kind),
            app_id=APP_ID if kind == "user" else None,
            permissions=permissions or [],
        )
        return {"Authorization": f"Bearer {jwt}"}

    def log_tail(self, lines: int = 80) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def cron_starts(self) -> Counter[str]:
        """How many times each due time of this stack's counted cron jobs ran. A cron job's
        id is ``<prefix>:<name>:<due time in ms>``; every run of a job logs one line naming
        its id (``job <name> ok|error|retry``)."""
        due_time = re.compile(rf"^{re.escape(self.prefix)}:[a-z_]+\.[a-z_.]+:\d+$")
        starts: Counter[str] = Counter()
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            job_id = entry.get("job_id") if isinstance(entry, dict) else None
            if isinstance(job_id, str) and due_time.match(job_id):
                starts[job_id] += 1
        return starts


def set_up_campaign(stack: Stack, inviters: int) -> dict[str, str]:
    """A coupon and a cash prize, a published "register → both" activity, the inviters'
    codes. Returns inviter → invite code."""
    op = stack.token("operator", "ops-replicas", OPERATOR_PERMISSIONS)
    urls = stack.urls
    now = datetime.now(UTC)
    with httpx.Client(timeout=30) as http:
        coupon = http.post(
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
        assert coupon.status_code == 201, coupon.text
        cash = http.post(
            f"{urls['reward']}/v1/prizes",
            headers=op,
            json={"type": "cash", "name": "HKD 10", "amount": "10.00", "currency": "HKD"},
        )
        assert cash.status_code == 201, cash.text
        created = http.post(
            f"{urls['activity']}/v1/activities",
            headers=op,
            json={
                "kind": "basic",
                "name": {"en": "Sign-up gifts"},
                "starts_at": (now - timedelta(days=1)).isoformat(),
                "ends_at": (now + timedelta(days=30)).isoformat(),
                "rules": [
                    {"task": "register", "prize_id": coupon.json()["id"]},
                    {"task": "register", "prize_id": cash.json()["id"]},
                ],
            },
        )
        assert created.status_code == 201, created.text
        published = http.post(
            f"{urls['activity']}/v1/activities/{created.json()['id']}/publish", headers=op
        )
        assert published.status_code == 200, published.text
        codes = {}
        for i in range(inviters):
            inviter = f"inviter-{i:03d}"
            got = http.get(
                f"{urls['referral']}/v1/me/invite-code", headers=stack.token("user", inviter)
            )
            assert got.status_code == 200, got.text
            codes[inviter] = got.json()["code"]
    return codes


async def _send(
    http: httpx.AsyncClient, url: str, headers: dict[str, str], event: dict[str, Any]
) -> int:
    """POST until acknowledged: a replica killed mid-request costs a retry with the same
    event id, which the API de-duplicates. Returns the number of attempts."""
    for attempt in range(1, 60):
        try:
            response = await http.post(url, headers=headers, json=event)
        except httpx.HTTPError:
            await asyncio.sleep(0.2)
            continue
        if response.status_code in (200, 202):
            return attempt
        assert response.status_code >= 500 or response.status_code == 409, response.text
        await asyncio.sleep(0.2)
    raise AssertionError(f"{event['event_id']} never acknowledged")


async def stream(
    stack: Stack,
    invitations: dict[str, str],
    codes: dict[str, str],
    rate: float,
    on_half: Any = None,
    concurrency: int = 32,
) -> dict[str, float]:
    """Registrations at ``rate`` per second; ``on_half`` runs once half were sent."""
    url = f"{stack.urls['activity']}/v1/events"
    headers = stack.token("service", "broker-backend")
    gate = asyncio.Semaphore(concurrency)
    started = time.monotonic()
    retries = 0

    async def one(http: httpx.AsyncClient, event: dict[str, Any]) -> None:
        nonlocal retries
        async with gate:
            retries += await _send(http, url, headers, event) - 1

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=10, limits=limits) as http:
        tasks = []
        for i, (invitee, inviter) in enumerate(invitations.items()):
            delay = started + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if on_half is not None and i == len(invitations) // 2:
                await asyncio.to_thread(on_half)
            event = {
                "event_id": f"reg-{invitee}",
                "type": "user.registered",
                "user_id": invitee,
                "app_id": APP_ID,
                "occurred_at": datetime.now(UTC).isoformat(),
                "invite_code": codes[inviter],
            }
            tasks.append(asyncio.create_task(one(http, event)))
        await asyncio.gather(*tasks)
    return {"seconds": time.monotonic() - started, "retries": retries}


@dataclass
class Tally:
    """Per invitee, what the services hold; ``problems`` lists every deviation."""

    expected: int
    counts: dict[str, Counter[str]] = field(default_factory=dict)
    duplicates: dict[str, int] = field(default_factory=dict)
    wrong_inviter: int = 0
    not_issued: int = 0

    def problems(self) -> list[str]:
        found = []
        wanted = {
            "events": 1,
            "bindings": 1,
            "grants": 2,
            "records": 2,
            "wallet": 1,
            "payments": 1,
        }
        for what, per_user in wanted.items():
            counts = self.counts.get(what, Counter())
            missing = self.expected - len(counts)
            extra = sum(1 for c in counts.values() if c > per_user)
            short = sum(1 for c in counts.values() if c < per_user)
            if missing or extra or short:
                found.append(f"{what}: {missing} users missing, {short} short, {extra} over")
        for what, count in self.duplicates.items():
            if count:
                found.append(f"{what}: {count} duplicated keys")
        if self.wrong_inviter:
            found.append(f"bindings to the wrong inviter: {self.wrong_inviter}")
        if self.not_issued:
            found.append(f"records not issued: {self.not_issued}")
        return found


async def _rows(dsn: str, sql: str) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(dsn, timeout=10)
    try:
        return list(await connection.fetch(sql, TENANT))
    finally:
        await connection.close()


async def tally(stack: Stack, invitations: dict[str, str]) -> Tally:
    invitees = set(invitations)
    result = Tally(expected=len(invitees))
    activity, referral, reward = (stack.dsn(s) for s in SERVICES)

    def per_user(rows: list[asyncpg.Record], column: str = "user_id") -> Counter[str]:
        return Counter(r[column] for r in rows if r[column] in invitees)

    def dup(rows: list[asyncpg.Record], column: str) -> int:
        return sum(c - 1 for c in Counter(r[column] for r in rows).values() if c > 1)

    events = await _rows(activity, "SELECT user_id FROM events WHERE tenant_id = $1")
    result.counts["events"] = per_user(events)
    bindings = await _rows(
        referral,
        "SELECT invitee_id, inviter_id FROM bindings WHERE tenant_id = $1 "
        "AND node = 'registration'",
    )
    result.counts["bindings"] = per_user(bindings, "invitee_id")
    result.wrong_inviter = sum(
        1 for r in bindings if invitations.get(r["invitee_id"], r["inviter_id"]) != r["inviter_id"]
    )
    grants = await _rows(activity, "SELECT grant_key, user_id FROM grants WHERE tenant_id = $1")
    result.counts["grants"] = per_user(grants)
    result.duplicates["grant keys"] = dup(grants, "grant_key")
    records = await _rows(
        reward, "SELECT id, grant_key, user_id, status FROM reward_records WHERE tenant_id = $1"
    )
    result.counts["records"] = per_user(records)
    result.duplicates["record grant keys"] = dup(records, "grant_key")
    result.not_issued = sum(1 for r in records if r["status"] != "issued")
    wallet = await _rows(
        reward, "SELECT record_id, user_id FROM wallet_coupons WHERE tenant_id = $1"
    )
    result.counts["wallet"] = per_user(wallet)
    result.duplicates["wallet records"] = dup(wallet, "record_id")
    payments = await _rows(
        stack.dsn("cash"), "SELECT user_id, idempotency_key FROM cash_payments WHERE tenant_id = $1"
    )
    result.counts["payments"] = per_user(payments)
    result.duplicates["payment keys"] = dup(payments, "idempotency_key")
    return result


async def settle(stack: Stack, invitations: dict[str, str], timeout: float) -> Tally:
    """Counts until nothing is missing (or the time is up), then once more a little later:
    a duplicate arriving late must be seen too."""
    deadline = time.monotonic() + timeout
    while True:
        found = await tally(stack, invitations)
        if not found.problems() or time.monotonic() > deadline:
            break
        await asyncio.sleep(1.0)
    await asyncio.sleep(3.0)
    return await tally(stack, invitations)
