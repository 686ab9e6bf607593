"""What the whole-pipeline scenarios share (``tests/e2e/replicas.py`` with
``tests/e2e/test_replicas.py`` and ``bench/replicas.py``; ``tests/fault/pipeline_scenario.py``
with ``tests/fault/test_pipeline_faults.py`` and ``bench/faults.py``):

- ``DevStack``: ``activity-platform dev`` on the servers and databases it is given, with
  its children found in ``/proc`` (to SIGKILL one) and their restarts read from its log;
- ``set_up_campaign``: a registration campaign seeded through the APIs (a coupon, and a
  cash prize if asked; a published "register → prizes" activity; the inviters' codes);
- ``stream_registrations``: registrations through invite codes at a rate, each POSTed until
  acknowledged (the API de-duplicates a retry by its event id);
- ``snapshot``: what every service holds per invitee, and every deviation from "each one
  bound once to the right inviter, its grants issued once each, one wallet entry, one
  payment per cash prize".
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from activity_platform.embedded import free_port
from service_kit.auth import CallerKind, encode_token
from service_kit.config import DEV_JWT_SECRET

SERVICES = ("activity", "referral", "reward")
APP_ID = "broker-app"
OPERATOR_PERMISSIONS = ["ActivityCenterFull", "RightsSystemFull"]
# Many processes start on shared cores: a loaded machine may need longer.
STARTUP_TIMEOUT_SECONDS = float(os.environ.get("E2E_STARTUP_TIMEOUT", "180"))
_EXITED = re.compile(r"^(\S+) exited with (-?\d+); restarting")


# --------------------------------------------------------------------------------------
# The stack


@dataclass
class DevStack:
    """``activity-platform dev --replicas N`` with ``env`` on top of this process's
    environment (database and Redis URLs, key prefix, secret, log level…); everything it
    prints goes to ``log_path``."""

    tenant: str
    env: dict[str, str]
    log_path: Path
    replicas: int = 1
    jwt_secret: str = DEV_JWT_SECRET
    ports: dict[str, int] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.ports = self.ports or {name: free_port() for name in SERVICES}

    @property
    def urls(self) -> dict[str, str]:
        return {name: f"http://127.0.0.1:{port}" for name, port in self.ports.items()}

    def start(self) -> None:
        env = dict(os.environ)
        env.pop("REWARD_DEFAULT_CASH_ENDPOINT_URL", None)  # dev's reference cash system
        env.update(
            {f"{n.upper()}_WORKER_METRICS_PORT": str(free_port()) for n in SERVICES} | self.env
        )
        if self.jwt_secret != DEV_JWT_SECRET:
            env["JWT_SECRET"] = self.jwt_secret
        argv = [sys.executable, "-m", "activity_platform.cli", "dev"]
        argv += ["--data-dir", str(self.log_path.parent), "--replicas", str(self.replicas)]
        argv += ["--cash-port", str(free_port()), "--tenant", self.tenant]
        for name, port in self.ports.items():
            argv += [f"--{name}-port", str(port)]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
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
            time.sleep(0.3)
        if pending:
            raise RuntimeError(f"not ready: {sorted(pending)}\n{self.log_tail()}")
        # Every replica up, not only the first to answer: every child started.
        wanted = 2 * len(SERVICES) * self.replicas + 1  # + the reference cash system
        while len(self.children()) < wanted:
            if time.monotonic() > deadline:
                raise RuntimeError(f"children missing: {self.children()}\n{self.log_tail()}")
            time.sleep(0.3)

    def children(self) -> dict[int, str]:
        """pid → command line of dev's children (the processes it supervises)."""
        assert self.process is not None
        found = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == self.process.pid:
                    found[int(entry.name)] = (
                        (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                    )
            except (OSError, IndexError, ValueError):
                continue
        return found

    def kill_one(self, kind: str, service: str, min_age: float = 0.0) -> int | None:
        """SIGKILL one replica (``serve`` or ``worker``) of a service that has run for at
        least ``min_age`` seconds (dev starts it again); None if none is running."""
        for pid, cmdline in sorted(self.children().items()):
            if f" {kind} {service}" in cmdline and _age(pid) >= min_age:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    continue
                return pid
        return None

    def exits(self) -> list[tuple[str, int]]:
        """Every child exit dev saw (and restarted), in order: (name, exit code)."""
        found = []
        for line in self._log_lines():
            if match := _EXITED.match(line):
                found.append((match.group(1), int(match.group(2))))
        return found

    def token(
        self, kind: str, sub: str, permissions: list[str] | None = None, tenant: str | None = None
    ) -> dict[str, str]:
        jwt = encode_token(
            self.jwt_secret,
            sub=sub,
            tenant_id=tenant or self.tenant,
            kind=CallerKind(kind),
            app_id=APP_ID if kind == "user" else None,
            permissions=permissions or [],
            ttl_seconds=3600,
        )
        return {"Authorization": f"Bearer {jwt}"}

    def _log_lines(self) -> list[str]:
        if not self.log_path.exists():
            return []
        return self.log_path.read_text(errors="replace").splitlines()

    def log_tail(self, lines: int = 80) -> str:
        return "\n".join(self._log_lines()[-lines:])

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _age(pid: int) -> float:
    """Seconds since the process started (0 when it is gone)."""
    try:
        start_ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, IndexError, ValueError):
        return 0.0
    return uptime - start_ticks / os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------------------
# The campaign


def set_up_campaign(stack: DevStack, inviters: int, *, cash: bool = False) -> dict[str, str]:
    """Through the APIs: a coupon prize (and a cash prize with ``cash``), a published
    "register → those prizes" basic activity with automatic issuance, and the inviters'
    codes. Returns inviter id → invite code."""
    op = stack.token("operator", "ops-scenario", OPERATOR_PERMISSIONS)
    urls = stack.urls
    now = datetime.now(UTC)
    prizes: list[dict[str, Any]] = [
        {
            "type": "coupon",
            "name": "30-day market data",
            "coupon_type": "market_data",
            "title": {"en": "Market data card"},
            "validity": {"days_from_issue": 30},
        }
    ]
    if cash:
        prizes.append({"type": "cash", "name": "HKD 10", "amount": "10.00", "currency": "HKD"})
    with httpx.Client(timeout=30) as http:
        rules = []
        for prize in prizes:
            created = http.post(f"{urls['reward']}/v1/prizes", headers=op, json=prize)
            assert created.status_code == 201, created.text
            rules.append({"task": "register", "prize_id": created.json()["id"]})
        activity = http.post(
            f"{urls['activity']}/v1/activities",
            headers=op,
            json={
                "kind": "basic",
                "name": {"en": "Sign-up gifts"},
                "starts_at": (now - timedelta(days=1)).isoformat(),
                "ends_at": (now + timedelta(days=30)).isoformat(),
                "rules": rules,
            },
        )
        assert activity.status_code == 201, activity.text
        published = http.post(
            f"{urls['activity']}/v1/activities/{activity.json()['id']}/publish", headers=op
        )
        assert published.status_code == 200 and published.json()["status"] == "running", (
            published.text
        )
        codes = {}
        for i in range(inviters):
            inviter = f"inviter-{i:03d}"
            got = http.get(
                f"{urls['referral']}/v1/me/invite-code", headers=stack.token("user", inviter)
            )
            assert got.status_code == 200, got.text
            codes[inviter] = got.json()["code"]
    return codes


def invitations(count: int, codes: dict[str, str]) -> dict[str, str]:
    """invitee → inviter, the inviters taken in turn."""
    inviters = sorted(codes)
    return {f"invitee-{i:06d}": inviters[i % len(inviters)] for i in range(count)}


# --------------------------------------------------------------------------------------
# The stream

# Every POST attempt: (sent, answered) on the monotonic clock, the outcome (a status code or
# the exception's name), and the response if there was one.
OnAttempt = Callable[[float, float, str, httpx.Response | None], None]


@dataclass
class Sent:
    acknowledged: set[str] = field(default_factory=set)
    # Refused (a 4xx other than "being stored concurrently"): user → status and body.
    refused: dict[str, str] = field(default_factory=dict)
    # Never acknowledged in time: user → last outcome.
    given_up: dict[str, str] = field(default_factory=dict)
    retries: int = 0
    seconds: float = 0.0


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return max(0.0, float(response.headers["Retry-After"]))
    except (KeyError, ValueError):
        return None


async def send_until_acknowledged(
    http: httpx.AsyncClient,
    url: str,
    headers: dict[str, str],
    event: dict[str, Any],
    gate: asyncio.Semaphore,
    sent: Sent,
    *,
    give_up_seconds: float,
    on_attempt: OnAttempt | None = None,
) -> None:
    """POST one event until it is acknowledged: connection errors, 5xx and 409
    ``event_in_flight`` are retried with the same event id (honouring Retry-After), which
    the API de-duplicates; any other 4xx is a refusal."""
    give_up = time.monotonic() + give_up_seconds
    user = event["user_id"]
    attempt = 0
    last = ""
    while time.monotonic() < give_up:
        attempt += 1
        wait = min(2.0, 0.2 * 2 ** min(attempt, 4)) * random.uniform(0.5, 1.0)
        response: httpx.Response | None = None
        async with gate:
            started = time.monotonic()
            try:
                response = await http.post(url, headers=headers, json=event)
                last = str(response.status_code)
            except httpx.HTTPError as exc:
                last = type(exc).__name__
        if on_attempt is not None:
            on_attempt(started, time.monotonic(), last, response)
        if response is not None:
            if response.status_code in (200, 202):
                sent.acknowledged.add(user)
                sent.retries += attempt - 1
                return
            in_flight = response.status_code == 409 and "event_in_flight" in response.text
            if response.status_code < 500 and not in_flight:
                sent.refused[user] = f"{last} {response.text[:200]}"
                return
            retry_after = _retry_after(response)
            if retry_after is not None:
                wait = min(retry_after, 5.0)
        await asyncio.sleep(wait)
    sent.given_up[user] = last


async def stream_registrations(
    stack: DevStack,
    invited: dict[str, str],
    codes: dict[str, str],
    rate: float,
    *,
    concurrency: int = 32,
    request_timeout: float = 10.0,
    give_up_seconds: float = 120.0,
    on_attempt: OnAttempt | None = None,
    before_send: Callable[[int], Awaitable[None]] | None = None,
) -> Sent:
    """Registrations through invite codes at ``rate`` per second, each sent until
    acknowledged; ``before_send(i)`` is awaited before the i-th is sent."""
    url = f"{stack.urls['activity']}/v1/events"
    headers = stack.token("service", "broker-backend")
    gate = asyncio.Semaphore(concurrency)
    sent = Sent()
    started = time.monotonic()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=request_timeout, limits=limits) as http:
        tasks = []
        for i, (invitee, inviter) in enumerate(invited.items()):
            delay = started + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if before_send is not None:
                await before_send(i)
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
                    send_until_acknowledged(
                        http,
                        url,
                        headers,
                        event,
                        gate,
                        sent,
                        give_up_seconds=give_up_seconds,
                        on_attempt=on_attempt,
                    )
                )
            )
        await asyncio.gather(*tasks)
    sent.seconds = time.monotonic() - started
    return sent


# --------------------------------------------------------------------------------------
# The count


@dataclass(frozen=True)
class Expected:
    """What each invitee must end with: one registration, one binding to its inviter,
    ``grants`` grants (one per prize of the campaign), each with one issued reward record
    and an ``issued`` ledger status, ``wallet`` coupons in the wallet, ``payments`` cash
    payments in the reference cash system."""

    grants: int = 1
    wallet: int = 1
    payments: int = 0


@dataclass
class Snapshot:
    expected: Expected
    invitees: int
    events_stored: int = 0
    bindings_right: int = 0
    bindings_missing: int = 0
    bindings_wrong_inviter: int = 0
    # Diagnostics: a registration node completed without a binding stays unbound for good.
    completed_without_binding: int = 0
    # Per invitee: how many of each thing the services hold.
    per_user: dict[str, Counter[str]] = field(default_factory=dict)
    # Keys that must be unique and are not: how many extra rows.
    duplicates: dict[str, int] = field(default_factory=dict)
    ledger_status: Counter[str] = field(default_factory=Counter)
    record_status: Counter[str] = field(default_factory=Counter)
    unsent_outbox: dict[str, int | str] = field(default_factory=dict)
    missing_examples: dict[str, list[str]] = field(default_factory=dict)

    def wanted(self) -> dict[str, int]:
        """What each invitee must have of each counted thing."""
        e = self.expected
        counts = {"grants": e.grants, "records": e.grants, "issued": e.grants, "wallet": e.wallet}
        if e.payments:
            counts["payments"] = e.payments
        return counts

    def _deviations(self) -> dict[str, tuple[int, int, int]]:
        """thing → (invitees without any, with fewer, with more) than wanted."""
        found = {}
        for what, per in self.wanted().items():
            counts = self.per_user.get(what, Counter())
            found[what] = (
                self.invitees - len(counts),
                sum(1 for c in counts.values() if c < per),
                sum(1 for c in counts.values() if c > per),
            )
        return found

    def complete(self) -> bool:
        n = self.invitees
        return (
            self.events_stored == n
            and self.bindings_right == n
            and self.ledger_status.get("issued", 0) == n * self.expected.grants
            and all(d == (0, 0, 0) for d in self._deviations().values())
        )

    def problems(self) -> list[str]:
        n = self.invitees
        found: list[str] = []

        def expect(label: str, value: int, wanted: int) -> None:
            if value != wanted:
                found.append(f"{label}: {value}, expected {wanted}")

        expect("registrations stored by the activity service", self.events_stored, n)
        expect("invitees bound at registration to the right inviter", self.bindings_right, n)
        expect("invitees without a registration binding", self.bindings_missing, 0)
        expect("invitees bound to a wrong inviter", self.bindings_wrong_inviter, 0)
        expect(
            "grants whose ledger says issued",
            self.ledger_status.get("issued", 0),
            n * self.expected.grants,
        )
        expect(
            "reward records issued", self.record_status.get("issued", 0), n * self.expected.grants
        )
        for what, (missing, short, over) in self._deviations().items():
            if missing or short or over:
                found.append(
                    f"{what}: {missing} invitees without, {short} with fewer, {over} with more "
                    f"than {self.wanted()[what]}"
                )
        for what, extra in self.duplicates.items():
            expect(f"duplicate {what}", extra, 0)
        return found

    def summary(self) -> str:
        def of(what: str) -> str:
            counts = self.per_user.get(what, Counter())
            return f"{sum(counts.values())} for {len(counts)} invitees"

        lines = [
            f"registrations expected      {self.invitees}",
            f"events stored               {self.events_stored}",
            f"bindings right / missing / wrong inviter  "
            f"{self.bindings_right} / {self.bindings_missing} / {self.bindings_wrong_inviter}",
            f"registration node completed without a binding  {self.completed_without_binding}",
            f"grants                      {of('grants')}",
            f"grant ledger record_status  {dict(self.ledger_status)}",
            f"reward records              {of('records')}",
            f"reward record status        {dict(self.record_status)}",
            f"wallet entries              {of('wallet')}",
        ]
        if self.expected.payments:
            lines.append(f"cash payments               {of('payments')}")
        lines += [
            f"duplicates                  {self.duplicates}",
            f"unsent outbox messages      {self.unsent_outbox}",
        ]
        for label, examples in self.missing_examples.items():
            if examples:
                lines.append(f"missing {label} (first): {', '.join(examples)}")
        return "\n".join(lines)

    def counts(self) -> tuple[int, ...]:
        """Everything counted, as one value: it changes whenever the pipeline moved."""
        per_user = tuple(sum(self.per_user.get(what, Counter()).values()) for what in self.wanted())
        return (
            self.events_stored,
            self.bindings_right,
            self.ledger_status.get("issued", 0),
            self.record_status.get("issued", 0),
            *per_user,
        )

    def progress(self) -> str:
        users = {what: len(self.per_user.get(what, ())) for what in self.wanted()}
        return (
            f"events {self.events_stored}, bindings {self.bindings_right}, "
            + ", ".join(f"{what} {n}" for what, n in users.items())
            + f", ledger issued {self.ledger_status.get('issued', 0)} / {self.invitees}"
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
    except Exception as exc:  # diagnostics only
        return type(exc).__name__


def _extra(rows: list[asyncpg.Record], column: str) -> int:
    return sum(c - 1 for c in Counter(r[column] for r in rows).values() if c > 1)


async def snapshot(
    dsns: dict[str, str], tenant: str, invited: dict[str, str], expected: Expected
) -> Snapshot:
    """Count, per invitee, what each service holds (``dsns``: plain ``postgresql://`` DSNs
    of the three services, and of the reference cash system when payments are expected)."""
    invitees = set(invited)
    shot = Snapshot(expected=expected, invitees=len(invitees))
    activity, referral, reward = (dsns[s] for s in SERVICES)

    def per_user(rows: list[asyncpg.Record], column: str = "user_id") -> Counter[str]:
        return Counter(r[column] for r in rows if r[column] in invitees)

    events = await _rows(
        activity,
        "SELECT user_id FROM events WHERE tenant_id = $1 AND type = 'user.registered'",
        tenant,
    )
    stored = set(per_user(events))
    shot.events_stored = len(stored)

    bindings = await _rows(
        referral,
        "SELECT invitee_id, inviter_id FROM bindings WHERE tenant_id = $1 "
        "AND node = 'registration'",
        tenant,
    )
    bound: dict[str, list[str]] = {}
    for r in bindings:
        bound.setdefault(r["invitee_id"], []).append(r["inviter_id"])
    right = {u for u in invitees if bound.get(u) == [invited[u]]}
    shot.bindings_right = len(right)
    shot.bindings_missing = len(invitees - set(bound))
    shot.bindings_wrong_inviter = len((invitees & set(bound)) - right)
    completions = await _rows(
        referral,
        "SELECT user_id FROM node_completions WHERE tenant_id = $1 AND node = 'registration'",
        tenant,
    )
    shot.completed_without_binding = len(
        ({r["user_id"] for r in completions} & invitees) - set(bound)
    )

    grants = await _rows(
        activity,
        "SELECT grant_key, user_id, record_status FROM grants WHERE tenant_id = $1",
        tenant,
    )
    shot.per_user["grants"] = per_user(grants)
    shot.duplicates["grant keys"] = _extra(grants, "grant_key")
    shot.ledger_status = Counter(r["record_status"] for r in grants if r["user_id"] in invitees)

    records = await _rows(
        reward,
        "SELECT id, grant_key, user_id, status FROM reward_records WHERE tenant_id = $1",
        tenant,
    )
    shot.per_user["records"] = per_user(records)
    shot.per_user["issued"] = per_user([r for r in records if r["status"] == "issued"])
    shot.duplicates["reward records per grant key"] = _extra(records, "grant_key")
    shot.record_status = Counter(r["status"] for r in records if r["user_id"] in invitees)

    wallet = await _rows(
        reward, "SELECT record_id, user_id FROM wallet_coupons WHERE tenant_id = $1", tenant
    )
    shot.per_user["wallet"] = per_user(wallet)
    shot.duplicates["wallet entries per record"] = _extra(wallet, "record_id")

    if expected.payments:
        payments = await _rows(
            dsns["cash"],
            "SELECT user_id, idempotency_key FROM cash_payments WHERE tenant_id = $1",
            tenant,
        )
        shot.per_user["payments"] = per_user(payments)
        shot.duplicates["payments per key"] = _extra(payments, "idempotency_key")

    for service in SERVICES:
        shot.unsent_outbox[service] = await _unsent(dsns[service])

    def first(have: set[str]) -> list[str]:
        return sorted(invitees - have)[:5]

    shot.missing_examples = {
        "events": first(stored),
        "bindings": first(right),
        **{what: first(set(shot.per_user[what])) for what in shot.wanted()},
    }
    return shot


async def settle(
    dsns: dict[str, str],
    tenant: str,
    invited: dict[str, str],
    expected: Expected,
    *,
    timeout: float,
    recheck_seconds: float = 3.0,
    report: Callable[[Snapshot], None] | None = None,
    stall_seconds: float | None = None,
) -> tuple[Snapshot | None, float]:
    """Counts until everything is there (or the time is up, or, with ``stall_seconds``,
    nothing moved for that long), then once more ``recheck_seconds`` later: a duplicate
    arriving late must be seen too. Returns the last count (None if the databases never
    answered) and the seconds until complete (or until the wait ended). ``report`` sees a
    count every ten seconds."""
    started = time.monotonic()
    deadline = started + timeout
    last_report = started
    shot: Snapshot | None = None
    last_counts: tuple[int, ...] = ()
    moved = started
    longest_still = 0.0
    while True:
        try:
            shot = await snapshot(dsns, tenant, invited, expected)
        except (OSError, asyncpg.PostgresError) as exc:
            print(f"  counting failed: {exc!r}", flush=True)
        longest_still = max(longest_still, time.monotonic() - moved)
        if shot is not None and shot.complete():
            took = time.monotonic() - started
            print(f"  complete; the count stood still {longest_still:.0f} s at most", flush=True)
            await asyncio.sleep(recheck_seconds)
            return await snapshot(dsns, tenant, invited, expected), took
        if shot is not None and shot.counts() != last_counts:
            last_counts, moved = shot.counts(), time.monotonic()
        stalled = stall_seconds is not None and time.monotonic() - moved >= stall_seconds
        if stalled or time.monotonic() >= deadline:
            if stalled:
                print(f"  nothing moved for {stall_seconds:.0f} s", flush=True)
            return shot, time.monotonic() - started
        if report is not None and shot is not None and time.monotonic() - last_report >= 10:
            last_report = time.monotonic()
            report(shot)
        await asyncio.sleep(1.0)
