"""An open-loop HTTP load generator: requests leave on a fixed schedule (request i at
``start + i / rate``), whatever the server's answers do, so a slow server shows up as
latency and backlog instead of silently lowering the offered rate.

One or several processes (``multiprocessing``, spawn), each an asyncio loop writing
pre-built HTTP/1.1 requests to raw keep-alive sockets (no HTTP client library on the hot
path). A request goes out on an idle connection, or a new one when all are busy (up to
``max_connections``); it never waits for an earlier answer. Each process reports what it
needs to prove it was not the bottleneck: its achieved send rate, how late every send was
against its schedule (lag), and its own CPU time (``os.times``) over the send window.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import time
from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from typing import Any

MAX_REQUESTS = 500_000
STALE_IDLE_SECONDS = 3.0  # below uvicorn's 5 s keep-alive timeout: never reuse a closing socket


@dataclass
class Plan:
    """What to send. ``mix`` decides the bodies (see ``build_body``)."""

    host: str
    port: int
    path: str
    token: str
    rate: float  # requests per second, all processes together
    seconds: float
    start_wall: float  # time.time() of request 0
    mix: dict[str, Any] = field(default_factory=dict)
    processes: int = 1
    connections: int = 16  # opened before the start, per process
    max_connections: int = 2048  # per process
    drain_timeout: float = 30.0
    # Scheduling priority of the generator processes (negative: ahead of the system under
    # test, like clients on their own machines; needs the privilege, else left as is).
    nice: int = 0

    @property
    def total(self) -> int:
        return min(MAX_REQUESTS, int(self.rate * self.seconds))


# --------------------------------------------------------------------------- bodies


def registrations(plan: Plan) -> int:
    """How many registrations the plan sends."""
    return sum(1 for i in range(plan.total) if is_register(i, plan.mix))


def is_register(i: int, mix: dict[str, Any]) -> bool:
    """Spreads the deposits evenly among the registrations: of every ``1 + extra``
    requests, ``extra`` are deposits (``extra`` = deposits per registration)."""
    extra = float(mix.get("deposit_share", 0.0))
    if mix.get("kind") != "pipeline":
        return False
    share = extra / (1 + extra)  # fraction of all requests that are deposits
    return int((i + 1) * share) == int(i * share)


def build_body(i: int, mix: dict[str, Any]) -> tuple[bytes, str | None]:
    """The JSON body of request ``i`` and, for a registration, the registering user."""
    tag = mix.get("tag", "run")
    occurred_at = mix.get("occurred_at", "2026-12-02T09:30:00+00:00")
    if is_register(i, mix):
        user = f"{tag}-u{i}"
        codes = mix["invite_codes"]
        event: dict[str, Any] = {
            "event_id": f"{tag}-reg-{i}",
            "type": "user.registered",
            "user_id": user,
            "app_id": "broker-app",
            "occurred_at": occurred_at,
            "invite_code": codes[i % len(codes)],
        }
        return json.dumps(event, separators=(",", ":")).encode(), user
    event = {
        "event_id": f"{tag}-dep-{i}",
        "type": "cash.deposited",
        "user_id": f"{tag}-d{i % 997}",
        "app_id": "broker-app",
        "occurred_at": occurred_at,
        "amount": "1000.00",
        "currency": "HKD",
    }
    return json.dumps(event, separators=(",", ":")).encode(), None


def build_request(plan: Plan, body: bytes) -> bytes:
    auth = f"Authorization: Bearer {plan.token}\r\n" if plan.token else ""
    head = (
        f"POST {plan.path} HTTP/1.1\r\nHost: {plan.host}:{plan.port}\r\n{auth}"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


# --------------------------------------------------------------------------- one process


class _Conn:
    __slots__ = ("reader", "writer", "pending", "last_used", "alive", "task")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.pending: deque[tuple[int, float]] = deque()
        self.last_used = time.perf_counter()
        self.alive = True
        self.task: asyncio.Task[None] | None = None


class _Sender:
    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.idle: list[_Conn] = []
        self.conns: set[_Conn] = set()
        self.freed = asyncio.Event()
        self.status: Counter[int] = Counter()
        self.response_s: list[float] = []
        self.result_status: dict[int, int] = {}
        self.opened = 0
        self.peak_in_flight = 0
        self.in_flight = 0
        self.last_response = 0.0

    async def open(self) -> _Conn:
        reader, writer = await asyncio.open_connection(self.plan.host, self.plan.port)
        conn = _Conn(reader, writer)
        conn.task = asyncio.create_task(self.read_loop(conn))
        self.conns.add(conn)
        self.opened += 1
        return conn

    async def read_loop(self, conn: _Conn) -> None:
        reader = conn.reader
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head[9:12])
                lower = head.lower()
                at = lower.find(b"content-length:")
                if at >= 0:
                    length = int(lower[at + 15 : lower.find(b"\r\n", at)])
                    if length:
                        await reader.readexactly(length)
                elif b"transfer-encoding: chunked" in lower:
                    while True:
                        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                        await reader.readexactly(size + 2)
                        if size == 0:
                            break
                now = time.perf_counter()
                index, sent = conn.pending.popleft()
                self.in_flight -= 1
                self.status[status] += 1
                self.result_status[index] = status
                self.response_s.append(now - sent)
                self.last_response = now
                conn.last_used = now
                if b"connection: close" in lower:
                    break
                if not conn.pending:
                    self.idle.append(conn)
                    self.freed.set()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, OSError):
            pass
        finally:
            conn.alive = False
            self.conns.discard(conn)
            for index, _ in conn.pending:
                self.in_flight -= 1
                self.status[0] += 1  # no answer: the connection broke
                self.result_status[index] = 0
            conn.pending.clear()
            conn.writer.close()
            self.freed.set()

    async def acquire(self) -> _Conn:
        while True:
            now = time.perf_counter()
            while self.idle:
                conn = self.idle.pop()
                if not conn.alive or conn.pending:
                    continue
                if now - conn.last_used > STALE_IDLE_SECONDS:
                    conn.writer.close()
                    continue
                return conn
            if len(self.conns) < self.plan.max_connections:
                try:
                    return await self.open()
                except OSError:
                    await asyncio.sleep(0.01)
                    continue
            self.freed.clear()
            await self.freed.wait()

    def send(self, conn: _Conn, index: int, payload: bytes) -> None:
        now = time.perf_counter()
        conn.pending.append((index, now))
        conn.last_used = now
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        conn.writer.write(payload)


async def _run_process(plan: Plan, proc: int) -> dict[str, Any]:
    mine = list(range(proc, plan.total, plan.processes))
    payloads: list[bytes] = []
    users: list[str | None] = []
    for i in mine:
        body, user = build_body(i, plan.mix)
        payloads.append(build_request(plan, body))
        users.append(user)
    sender = _Sender(plan)
    # Connections are opened shortly before the start (uvicorn closes idle ones after 5 s).
    await asyncio.sleep(max(0.0, plan.start_wall - 0.5 - time.time()))
    for _ in range(plan.connections):
        try:
            sender.idle.append(await sender.open())
        except OSError:
            break
    perf0 = time.perf_counter() + (plan.start_wall - time.time())
    rate = plan.rate
    lags: list[float] = []
    sent_wall: list[float] = []
    cpu0 = os.times()
    wall_base = time.time() - time.perf_counter()
    k = 0
    n = len(mine)
    while k < n:
        now = time.perf_counter()
        target = perf0 + mine[k] / rate
        if target > now:
            await asyncio.sleep(target - now)
            continue
        while k < n:
            target = perf0 + mine[k] / rate
            if target > time.perf_counter():
                break
            conn = await sender.acquire()
            sender.send(conn, k, payloads[k])
            sent_at = time.perf_counter()
            lags.append(sent_at - target)
            sent_wall.append(wall_base + sent_at)
            k += 1
    window_end = time.perf_counter()
    cpu1 = os.times()
    deadline = time.perf_counter() + plan.drain_timeout
    while sender.in_flight > 0:
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            break
        sender.freed.clear()
        try:
            await asyncio.wait_for(sender.freed.wait(), remaining)
        except TimeoutError:
            break
    for conn in list(sender.conns):
        conn.writer.close()
        if conn.task is not None:
            conn.task.cancel()
    cpu2 = os.times()
    unanswered = n - len(sender.result_status)
    registered = [
        (users[j], sent_wall[j], sender.result_status.get(j, -1))
        for j in range(n)
        if users[j] is not None
    ]
    return {
        "sent": n,
        "status": {str(k_): v for k_, v in sender.status.items()},
        "unanswered": unanswered,
        "lags": lags,
        "response_s": sender.response_s,
        "registered": registered,
        "first_send_wall": sent_wall[0] if sent_wall else plan.start_wall,
        "last_send_wall": sent_wall[-1] if sent_wall else plan.start_wall,
        "last_response_wall": wall_base + sender.last_response if sender.last_response else 0.0,
        "window_s": window_end - perf0,
        "cpu_window_s": (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system),
        "cpu_total_s": (cpu2.user + cpu2.system),
        "nice": os.getpriority(os.PRIO_PROCESS, 0),
        "connections_opened": sender.opened,
        "peak_in_flight": sender.peak_in_flight,
    }


def _child(plan_dict: dict[str, Any], proc: int, queue: Any) -> None:
    plan = Plan(**plan_dict)
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = plan.max_connections + 256
        if soft != resource.RLIM_INFINITY and soft < wanted:
            limit = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    except (ImportError, ValueError, OSError):
        pass
    if plan.nice:
        try:
            os.setpriority(os.PRIO_PROCESS, 0, plan.nice)
        except OSError:
            pass
    try:
        queue.put((proc, asyncio.run(_run_process(plan, proc))))
    except BaseException as exc:  # report, never hang the parent
        queue.put((proc, {"error": repr(exc)}))


# --------------------------------------------------------------------------- parent side


class Running:
    """Generator processes started by ``start``; ``collect`` joins them and sums up."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        ctx = multiprocessing.get_context("spawn")
        self.queue = ctx.Queue()
        self.parts: dict[int, dict[str, Any]] = {}
        self.processes = [
            ctx.Process(target=_child, args=(asdict(plan), p, self.queue), daemon=True)
            for p in range(plan.processes)
        ]
        for process in self.processes:
            process.start()

    def _take(self, timeout: float) -> bool:
        """Moves at most one finished process's result off the queue."""
        import queue

        try:
            proc, result = self.queue.get(timeout=timeout) if timeout else self.queue.get_nowait()
        except queue.Empty:
            return False
        self.parts[proc] = result
        return True

    def _finish(self) -> dict[str, Any]:
        for process in self.processes:
            process.join(5)
            if process.is_alive():
                process.kill()
        errors = [r["error"] for r in self.parts.values() if "error" in r]
        if errors or len(self.parts) < len(self.processes):
            raise RuntimeError(f"load generator failed: {errors or 'no result'}")
        return summarize(self.plan, list(self.parts.values()))

    def try_collect(self) -> dict[str, Any] | None:
        """The summary if every process has finished (sending and reading answers)."""
        while len(self.parts) < len(self.processes) and self._take(0):
            pass
        return self._finish() if len(self.parts) == len(self.processes) else None

    def collect(self, timeout: float | None = None) -> dict[str, Any]:
        plan = self.plan
        wait = timeout or (plan.start_wall - time.time() + plan.seconds + plan.drain_timeout + 60)
        deadline = time.monotonic() + wait
        while len(self.parts) < len(self.processes):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            if not self._take(min(remaining, 1.0)) and not any(
                p.is_alive() for p in self.processes
            ):
                self._take(0)
                break
        return self._finish()


def start(plan: Plan) -> Running:
    if plan.total <= 0:
        raise ValueError("nothing to send")
    return Running(plan)


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, int(round(q / 100 * len(ordered) + 0.5)) - 1))
    return ordered[rank]


def summarize(plan: Plan, parts: list[dict[str, Any]]) -> dict[str, Any]:
    sent = sum(p["sent"] for p in parts)
    status: Counter[str] = Counter()
    for p in parts:
        status.update(p["status"])
    ok = sum(v for k, v in status.items() if k.startswith("2"))
    lags = [x for p in parts for x in p["lags"]]
    responses = [x for p in parts for x in p["response_s"]]
    last_send = max(p["last_send_wall"] for p in parts)
    # The send window: from request 0's slot to one interval after the last send.
    window = max(1e-9, last_send - plan.start_wall + 1 / plan.rate)
    last_response = max(p["last_response_wall"] for p in parts)
    response_window = max(1e-9, last_response - plan.start_wall) if last_response else 0.0
    cpu_window = sum(p["cpu_window_s"] for p in parts)
    window_s = max(p["window_s"] for p in parts)
    return {
        "target_rate": plan.rate,
        "processes": plan.processes,
        "sent": sent,
        "ok": ok,
        "status": dict(status),
        "unanswered": sum(p["unanswered"] for p in parts),
        "send_rate": sent / window,
        "ok_response_rate": ok / response_window if response_window else 0.0,
        "lag_p50_ms": _pct(lags, 50) * 1000,
        "lag_p99_ms": _pct(lags, 99) * 1000,
        "lag_max_ms": max(lags) * 1000 if lags else float("nan"),
        "response_p50_ms": _pct(responses, 50) * 1000,
        "response_p99_ms": _pct(responses, 99) * 1000,
        # CPU of all generator processes over the send window, in % of one core.
        "gen_cpu_pct": 100 * cpu_window / window_s if window_s > 0 else float("nan"),
        "connections_opened": sum(p["connections_opened"] for p in parts),
        "nice": min(p["nice"] for p in parts),
        "peak_in_flight": sum(p["peak_in_flight"] for p in parts),
        "registered": [r for p in parts for r in p["registered"]],
    }
