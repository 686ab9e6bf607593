"""The arq worker bootstrap shared by the three services.

Each worker listens on its service's queue, runs the outbox relay in the background and
gives every job a ``ctx`` with ``settings``, ``db``, ``http``, ``clock`` and ``redis``.
A killed worker's job is re-run by another once its in-progress key expires; that key is a
lease of ``IN_PROGRESS_LEASE_SECONDS`` which the running worker renews (``keep_leases``), so
the delay is seconds, not minutes, whatever the longest job's timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import math
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, NoReturn

from arq import Retry, Worker
from arq.constants import in_progress_key_prefix
from arq.cron import CronJob
from arq.worker import Function, func
from prometheus_client import start_http_server
from sqlalchemy.ext.asyncio import AsyncSession

from service_kit import tracing
from service_kit.clock import Clock, SystemClock
from service_kit.config import ServiceSettings
from service_kit.correlation import (
    bound,
    job_var,
    message_context,
    new_request_id,
    request_id_var,
    request_ids_of,
    service_var,
    traceparents_of,
)
from service_kit.db import Database
from service_kit.http import ServiceClient
from service_kit.outbox import OutboxMessageMixin, Wakeup, relay_forever
from service_kit.queue import queue_name, redis_settings
from service_kit.sandbox import TenantClocks, announce_work_done
from service_kit.telemetry import JOB_DURATION, JOBS
from service_kit.transient import is_transient

log = logging.getLogger(__name__)

JobFn = Callable[..., Awaitable[Any]]
MessageFn = Callable[[dict[str, Any], AsyncSession, dict[str, Any]], Awaitable[Any]]
ChunkFn = Callable[[dict[str, Any], AsyncSession, list[dict[str, Any]]], Awaitable[Any]]
# Applies messages in a session until a deadline; returns how many it applied.
_ApplyFn = Callable[[dict[str, Any], AsyncSession, list[dict[str, Any]], float], Awaitable[int]]
FinishFn = Callable[[dict[str, Any], AsyncSession], Awaitable[None]]
PrepareFn = Callable[[dict[str, Any], AsyncSession, list[dict[str, Any]]], Awaitable[None]]
UnpackFn = Callable[[dict[str, Any]], list[dict[str, Any]]]
PendingFn = Callable[
    [dict[str, Any], AsyncSession, list[dict[str, Any]]], Awaitable[list[dict[str, Any]]]
]
JOB_TIMEOUT_SECONDS = 20
# A delivery takes no new message after this long, commits the ones handled and asks arq to
# run it again at once (``Retry``), its applied messages skipped by ``pending``: a try never
# reaches the job timeout, whose failure would send every message of it again (message_job).
DELIVERY_BUDGET_SECONDS = JOB_TIMEOUT_SECONDS / 2
# arq counts every try against ``max_tries`` (ten for other jobs), a stop at the budget
# too: under a long overload a big delivery stopped ten times failed, and the sweep sent
# it again, each send a step towards a dead letter. A delivery always makes progress
# between stops (at least one message a try), so it may take this many.
DELIVERY_MAX_TRIES = 200
# A job's in-progress key tells arq's workers "running, do not start it". arq gives it the
# largest timeout of all the worker's functions + 10 s: one hourly cron job allowed 600 s
# kept every delivery a killed worker held "running" for ten minutes — the sweep waits on
# a running job, and arq starts it again only when the key expires. Instead the key is a
# lease of the delivery timeout + 10 s, renewed every third of it while the job runs: a
# live worker's long job is never started twice, a dead worker's jobs are started again
# by another within this many seconds.
IN_PROGRESS_LEASE_SECONDS = JOB_TIMEOUT_SECONDS + 10
# How long the result of a cron job's due time is kept: while it is, no worker can enqueue
# that due time again (``prefixed_cron``).
CRON_RESULT_SECONDS = 3600
_UNTRACED: contextlib.nullcontext[None] = contextlib.nullcontext()
# How often a worker refreshes its health key (which expires a second after that).
HEALTH_INTERVAL_SECONDS = 10
# Connections a worker keeps beyond one per job: the relay, the sweeps, a cron job.
WORKER_SPARE_CONNECTIONS = 3


def worker_health_key(prefix: str, service: str) -> str:
    """The Redis key a worker refreshes while its main loop runs: one per host (a container
    is a host), so each replica answers for itself."""
    return f"{prefix}:health:{service}:{socket.gethostname()}"


def retry_delay(job_try: int, base: float = 0.5, cap: float = 30.0) -> float:
    """Back-off between tries of transient failures: 0.5, 1, 2, 4 … 30 s."""
    return float(min(cap, base * 2 ** max(0, job_try - 1)))


def job(name: str, service: str, max_tries: int | None = None) -> Callable[[JobFn], Function]:
    """Register a coroutine as the arq job ``name`` ("domain.verb"), counted in metrics.

    A transient failure (a dependency unreachable, a deadlock victim: see
    ``service_kit.transient``) is retried with back-off instead of failing the job for good.
    """

    def wrap(fn: JobFn) -> Function:
        @functools.wraps(fn)
        async def counted(ctx: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            payloads = as_list(args[0]) if args else []
            request_ids = request_ids_of(payloads)
            # The job's lines carry the request that caused it; a delivery of messages of
            # several requests names them all on its last line and each message's lines
            # carry its own (``message_job``); a job no request caused (cron) gets an id of
            # its own, which the jobs it causes inherit.
            request_id = request_ids[0] if len(request_ids) == 1 else new_request_id()
            # With traces exported, the job is a span continuing the trace its messages
            # carry (``service_kit.tracing``).
            traced = (
                tracing.job_span(name, ctx, traceparents_of(payloads), len(payloads))
                if tracing.active()
                else _UNTRACED
            )
            with (
                bound(service_var, service),
                bound(job_var, f"{name}:{ctx.get('job_id', '-')}"),
                bound(request_id_var, request_id),
                traced as span,
            ):
                outcome = "error"
                error: BaseException | None = None
                try:
                    result = await fn(ctx, *args, **kwargs)
                    outcome = "ok"
                except Retry:
                    outcome = "retry"
                    raise
                except Exception as exc:
                    error = exc
                    if is_transient(exc):
                        outcome = "retry"
                        log.warning("%s: transient failure, retrying: %r", name, exc)
                        raise Retry(defer=retry_delay(ctx.get("job_try", 1))) from exc
                    raise
                finally:
                    elapsed = time.perf_counter() - started
                    JOBS.labels(service, name, outcome).inc()
                    if outcome == "ok":
                        JOB_DURATION.labels(service, name).observe(elapsed)
                    tracing.end_job(span, outcome, error)
                    _log_job(ctx, name, outcome, elapsed, len(payloads), request_ids)
            return result

        return func(counted, name=name, timeout=JOB_TIMEOUT_SECONDS, max_tries=max_tries)

    return wrap


class ItemsFailed(Exception):
    """Some messages of a delivery failed for good; the others were committed. The job
    fails, so the outbox sweep sends the delivery's messages again (the committed ones are
    no-ops by their keys) until the failing ones become dead letters."""


def message_job(
    name: str,
    service: str,
    prepare: PrepareFn | None = None,
    *,
    finish: FinishFn | None = None,
    pending: PendingFn | None = None,
    per_transaction: int | None = None,
    unpack: UnpackFn | None = None,
) -> Callable[[MessageFn], Function]:
    """Register the consumer of outbox messages ``name``: the relay sends up to a hundred
    payloads in one job, which ``fn(ctx, session, payload)`` handles one by one in a single
    transaction. A transient failure rolls the whole delivery back and retries it (see
    ``job``). A message failing for good rolls it back too, and the delivery is handled
    again message by message, each in its own savepoint, so a bad message cannot undo the
    others (savepoints cost two round trips a message, paid only when one is needed).

    ``prepare(ctx, session, payloads)``, if given, runs first: reading what the messages
    need in one query instead of one per message; ``finish(ctx, session)`` runs before the
    commit, writing what the messages left to be written together. ``per_transaction``
    commits a delivery every that many messages instead: consumers that take locks shared
    by many messages (the referral graph's advisory locks on an inviter's chain), which one
    long transaction would hold against the other deliveries, while the round trips of a
    transaction and the flush of its new rows are still shared. A job enqueued with a
    single payload (not a list) is handled as a delivery of one.

    A consumer with ``pending(ctx, session, payloads)`` (the messages not applied yet, in
    one query) has a time budget per delivery (half the job timeout): once spent, the
    messages handled so far are committed (with ``finish``) and the job is run again at
    once (``Retry``), its next try starting where this one stopped. Without the budget a
    slow delivery (a hundred messages on busy cores, twenty jobs at once in a worker)
    reaches the job timeout, the sweep sends all its messages again, and a consumer whose
    re-run of an applied message costs as much as applying it never gets past the same
    first ones. (The one-by-one fallback after a message failed for good has no budget.)

    ``unpack(payload)``, if given, turns each message into the items it carries (a message
    may bundle many): the items are what ``fn`` handles, what ``pending`` filters and what
    ``per_transaction`` and the budget count, so a bundled delivery commits and stops as
    often as the same items sent one message each."""

    def wrap(fn: MessageFn) -> Function:
        async def apply(
            ctx: dict[str, Any], session: AsyncSession, items: list[dict[str, Any]], deadline: float
        ) -> int:
            for index, payload in enumerate(items):
                if index and time.monotonic() >= deadline:
                    return index
                with message_context(payload):
                    await fn(ctx, session, payload)
            return len(items)

        handle = _consumer(name, apply, prepare, finish, pending, per_transaction, unpack)
        return _registered(name, service, fn.__name__, handle)

    return wrap


def chunk_job(
    name: str,
    service: str,
    prepare: PrepareFn | None = None,
    *,
    pending: PendingFn | None = None,
    per_transaction: int | None = None,
    unpack: UnpackFn | None = None,
) -> Callable[[ChunkFn], Function]:
    """Like ``message_job``, for a consumer whose ``fn(ctx, session, payloads)`` applies a
    whole chunk of messages (``per_transaction`` of them) at once with set-based SQL: one
    statement per step for the chunk instead of one per message. When a message fails for
    good, each message of the chunk is applied alone, as a chunk of one in its savepoint.
    ``unpack``: as for ``message_job`` (a chunk is then of items)."""

    def wrap(fn: ChunkFn) -> Function:
        async def apply(
            ctx: dict[str, Any], session: AsyncSession, items: list[dict[str, Any]], deadline: float
        ) -> int:
            await fn(ctx, session, items)
            return len(items)

        handle = _consumer(name, apply, prepare, None, pending, per_transaction, unpack)
        return _registered(name, service, fn.__name__, handle)

    return wrap


class ServiceWorker(Worker):
    """arq's worker, minus the questions to Redis about its own running jobs."""

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        # Each poll (twenty a second) reads every queued job id, the jobs this worker runs
        # included, and arq asks Redis about each (watch, exists, zscore): a busy worker's
        # twenty running jobs cost some 1,600 round trips a second for nothing. A job
        # whose run has ended may be queued again (``Retry``): it is asked about as usual.
        running = {job_id for job_id, task in self.tasks.items() if not task.done()}
        await super().start_jobs([j for j in job_ids if j.decode() not in running])


def _registered(name: str, service: str, fn_name: str, handle: JobFn) -> Function:
    """The arq function of a consumer, named after the function it wraps."""
    handle.__name__ = handle.__qualname__ = fn_name
    return job(name, service, max_tries=DELIVERY_MAX_TRIES)(handle)


def _consumer(
    name: str,
    apply: _ApplyFn,
    prepare: PrepareFn | None,
    finish: FinishFn | None,
    pending: PendingFn | None,
    per_transaction: int | None,
    unpack: UnpackFn | None,
) -> Callable[[dict[str, Any], Any], Awaitable[dict[str, int]]]:
    """The job handling a delivery of outbox messages (see ``message_job``)."""

    async def all_at_once(
        ctx: dict[str, Any], items: list[dict[str, Any]], deadline: float
    ) -> None:
        async with ctx["db"].session() as session:
            if pending is not None:
                items = await pending(ctx, session, items)
            if prepare is not None:
                await prepare(ctx, session, items)
            # New rows (outbox messages, transitions) wait for one flush at commit, one
            # statement per table, instead of being flushed one by one before every query
            # of the next message.
            with session.no_autoflush:
                handled = await apply(ctx, session, items, deadline)
            if finish is not None:
                await finish(ctx, session)
        if handled < len(items):  # the handled ones are committed: the rest next try
            stop_delivery(name, handled, len(items))

    async def one_by_one(ctx: dict[str, Any], items: list[dict[str, Any]]) -> list[str]:
        """Each message in its own savepoint: a message failing for good is reported and
        the others go on; a transient failure stops the delivery, to be retried."""
        failures: list[str] = []
        async with ctx["db"].session() as session:
            if prepare is not None:
                await prepare(ctx, session, items)
            for payload in items:
                kept = set(session.info)
                try:
                    with message_context(payload):
                        async with _savepoint(session):
                            await apply(ctx, session, [payload], math.inf)
                            if finish is not None:
                                await finish(ctx, session)
                except Retry:
                    raise
                except Exception as exc:
                    if is_transient(exc):
                        raise
                    # What the failed message left in the session for ``finish`` to
                    # write (deferred rows) is rolled back with its savepoint.
                    for key in set(session.info) - kept:
                        del session.info[key]
                    with message_context(payload):
                        log.exception("%s: message failed: %s", name, _describe(payload))
                    failures.append(f"{_describe(payload)}: {exc!r}")
        return failures

    async def handle(ctx: dict[str, Any], payloads: Any) -> dict[str, int]:
        items = as_list(payloads)
        if unpack is not None:
            items = [item for payload in items for item in unpack(payload)]
        # Only a consumer that can tell the applied messages stops at the budget: the next
        # try of any other would redo them all.
        deadline = time.monotonic() + delivery_budget(ctx) if pending else math.inf
        size = per_transaction or len(items) or 1
        if pending is not None and len(items) > size:
            # Chunks of what is left: a try after a stop at the budget must not spend a
            # transaction per chunk already applied.
            async with ctx["db"].session() as session:
                items = await pending(ctx, session, items)
        failures: list[str] = []
        for start in range(0, len(items), size):
            chunk = items[start : start + size]
            if start and time.monotonic() >= deadline:
                stop_delivery(name, start, len(items))
            try:
                await all_at_once(ctx, chunk, deadline)
                continue
            except Retry:
                raise
            except Exception as exc:
                if len(items) == 1 or is_transient(exc):
                    raise
                log.info("%s: a message failed (%r); handling them one by one", name, exc)
            failures += await one_by_one(ctx, chunk)
        if failures:
            raise ItemsFailed("; ".join(failures)[:2000])
        return {"messages": len(items)}

    return handle


def delivery_budget(ctx: dict[str, Any]) -> float:
    """Seconds a delivery may take before it stops and hands the rest to its next try: half
    the job timeout (a worker with shorter jobs says so in ``delivery_budget_seconds``)."""
    return float(min(DELIVERY_BUDGET_SECONDS, ctx.get("delivery_budget_seconds", math.inf)))


def stop_delivery(name: str, handled: int, total: int) -> NoReturn:
    log.info(
        "%s: %d of %d messages handled within the budget; the rest next try", name, handled, total
    )
    raise Retry(defer=0)


@contextlib.asynccontextmanager
async def _savepoint(session: AsyncSession) -> AsyncIterator[AsyncSession]:
    async with session.begin_nested():
        yield session


def _log_job(
    ctx: dict[str, Any],
    name: str,
    outcome: str,
    elapsed: float,
    messages: int,
    request_ids: list[str],
) -> None:
    """One line per job run: what ran, how it ended, how long it took, and which requests
    caused it (the payload itself is not logged: it may name users)."""
    fields: dict[str, Any] = {
        "job_name": name,
        "job_id": ctx.get("job_id"),
        "job_try": ctx.get("job_try", 1),
        "outcome": outcome,
        "duration_ms": round(elapsed * 1000, 2),
        "messages": messages,
    }
    if len(request_ids) > 1:
        fields["request_ids"] = request_ids[:100]
    level = logging.WARNING if outcome == "error" else logging.INFO
    log.log(level, "job %s %s", name, outcome, extra={"fields": fields})


def as_list(payloads: Any) -> list[dict[str, Any]]:
    """The payloads of a delivery (a job enqueued with one payload is a delivery of one)."""
    return payloads if isinstance(payloads, list) else [payloads]


def _describe(payload: Any) -> str:
    if isinstance(payload, dict):
        keys = ("grant_key", "event_id", "record_id", "user_id", "invitee_id")
        return ", ".join(f"{k}={payload[k]}" for k in keys if k in payload) or "message"
    return "message"


async def open_context(
    ctx: dict[str, Any],
    settings: ServiceSettings,
    clock: Clock | None = None,
    sandbox_model: type[Any] | None = None,
) -> dict[str, Any]:
    """Fill a job context; used by the worker and by tests that run jobs in-process.
    ``clock`` is the system's; ``clocks`` answers per tenant (a sandbox tenant's own)."""
    ctx["settings"] = settings
    # No ping before each checkout (three round trips with asyncpg, a tenth of a busy
    # worker's time): a connection that died with the server fails its job, which is
    # retried as transient, and the disconnect makes the pool replace all its connections.
    # A connection per job and a few for the relay and sweeps: a job that found the pool
    # empty would open an overflow connection and close it afterwards, and a new connection
    # costs a TLS probe, authentication and every statement prepared again.
    pool_size = max(settings.db_pool_size, settings.worker_max_jobs + WORKER_SPARE_CONNECTIONS)
    ctx["db"] = Database(
        settings.database_url, pool_size=pool_size, pre_ping=False, plan_per_execution=True
    )
    ctx["http"] = ServiceClient(settings)
    ctx["clock"] = clock or SystemClock()
    ctx["clocks"] = TenantClocks(ctx["clock"], ctx["db"], sandbox_model, settings.sandbox_enabled)
    return ctx


async def close_context(ctx: dict[str, Any]) -> None:
    await ctx["http"].aclose()
    await ctx["db"].dispose()


async def keep_leases(worker: Worker) -> None:
    """Renew the in-progress keys of the jobs ``worker`` is running, every third of its
    lease (``worker.in_progress_timeout_s``, which arq sets when it starts a job), for as
    long as the worker lives. A renewal that fails (Redis away) is tried again next time;
    the job itself notices Redis when it finishes."""
    while True:
        lease = float(worker.in_progress_timeout_s)
        await asyncio.sleep(lease / 3)
        # ``job_tasks`` holds the jobs whose function is running; arq drops one before it
        # records the job's end, so a finished job's key is not renewed.
        running = list(worker.job_tasks)
        if not running:
            continue
        try:
            pipe = worker.pool.pipeline(transaction=False)
            for job_id in running:
                pipe.pexpire(in_progress_key_prefix + job_id, int(lease * 1000))
            await pipe.execute()
        except Exception as exc:
            log.warning("in-progress leases of %d jobs not renewed: %r", len(running), exc)


def prefixed_cron(cron_job: CronJob, prefix: str) -> CronJob:
    """A copy of ``cron_job`` named under the platform's key prefix. arq gives each due time
    of a cron job the id ``<name>:<time>`` and runs an id once, which is what makes a tick
    run once whatever the number of workers; without the prefix two stacks sharing a Redis
    would also share ticks (one stack's pass skipping the other's). A copy, too, because
    arq keeps its schedule (``next_run``) on the object.

    arq enqueues an id only while neither the job nor its result exists, and keeps no
    result of a cron job by default: once a due time had run, a worker whose loop lagged
    behind (it enqueues every due time it missed, one per poll) enqueued it again and it ran
    a second time. The result is kept (``CRON_RESULT_SECONDS``), so a due time that ran is
    refused for that long."""
    return dataclasses.replace(
        cron_job,
        name=f"{prefix}:{cron_job.name}",
        next_run=None,
        keep_result_s=max(cron_job.keep_result_s or 0, CRON_RESULT_SECONDS),
    )


def build_worker(
    *,
    service: str,
    settings: ServiceSettings,
    functions: Sequence[Function],
    outbox_model: type[OutboxMessageMixin],
    sandbox_model: type[Any] | None = None,
    cron_jobs: Sequence[CronJob] = (),
    clock: Clock | None = None,
    burst: bool = False,
    run_relay: bool = True,
    extra_context: Callable[[dict[str, Any]], Awaitable[None]] | None = None,
) -> Worker:
    async def on_startup(ctx: dict[str, Any]) -> None:
        ctx["lease_task"] = asyncio.create_task(keep_leases(worker))
        # Before the context is opened: its service client is then instrumented.
        tracing.configure(service, "worker")
        if settings.worker_metrics_port and not burst:
            try:
                start_http_server(settings.worker_metrics_port, addr=settings.worker_metrics_host)
            except OSError as exc:  # metrics are worth a warning, not a dead worker
                log.warning(
                    "worker metrics not served on :%s: %s", settings.worker_metrics_port, exc
                )
        await open_context(ctx, settings, clock, sandbox_model)
        if extra_context is not None:
            await extra_context(ctx)
        if run_relay:
            wakeup = Wakeup()
            # A job that committed messages wakes the relay at once (same process).
            ctx["db"].on_outbox_commit = wakeup.set
            ctx["relay_task"] = asyncio.create_task(
                relay_forever(
                    ctx["db"],
                    outbox_model,
                    ctx["redis"],
                    settings.queue_prefix,
                    settings.outbox_poll_seconds,
                    settings.outbox_batch_size,
                    max_per_job=settings.outbox_max_per_job,
                    sweep_seconds=settings.outbox_sweep_seconds,
                    grace_seconds=settings.outbox_grace_seconds,
                    wakeup=wakeup,
                )
            )
        # The worker takes jobs from here on (arq's own "Starting worker" line comes
        # before this start-up): what a supervisor or a test waits for.
        log.info("worker ready", extra={"fields": {"pid": os.getpid()}})

    async def on_shutdown(ctx: dict[str, Any]) -> None:
        for name in ("relay_task", "lease_task"):
            task = ctx.get(name)
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await close_context(ctx)

    async def after_job_end(ctx: dict[str, Any]) -> None:
        await announce_work_done(ctx["redis"], settings.queue_prefix)

    worker = ServiceWorker(
        functions=list(functions),
        cron_jobs=[prefixed_cron(job, settings.queue_prefix) for job in cron_jobs] or None,
        redis_settings=redis_settings(settings.redis_url),
        queue_name=queue_name(settings.queue_prefix, service),
        on_startup=on_startup,
        on_shutdown=on_shutdown,
        # Only where sandboxes are allowed: an advance waiting for a tenant's queued work
        # looks again when a job ended (``service_kit.sandbox.WorkDoneWaiter``).
        after_job_end=after_job_end if settings.sandbox_enabled else None,
        job_timeout=JOB_TIMEOUT_SECONDS,
        max_jobs=settings.worker_max_jobs,
        max_tries=10,
        keep_result=3600,
        burst=burst,
        # Short: each hop of the event → Issued path waits up to this long for its job.
        poll_delay=0.05,
        handle_signals=not burst,
        # Written from the main loop; ``activity-platform healthcheck`` reads it (one key
        # per host, so each replica answers for itself).
        health_check_key=worker_health_key(settings.queue_prefix, service),
        health_check_interval=HEALTH_INTERVAL_SECONDS,
    )
    # Not arq's largest timeout + 10 s: a lease that ``keep_leases`` renews.
    worker.in_progress_timeout_s = IN_PROGRESS_LEASE_SECONDS
    return worker
