"""The arq worker bootstrap shared by the three services.

Each worker listens on its service's queue, runs the outbox relay in the background and
gives every job a ``ctx`` with ``settings``, ``db``, ``http``, ``clock`` and ``redis``.
Job timeouts stay short: a killed worker's job is re-run once its in-progress key expires
(the largest ``job_timeout`` + 10 s), so short timeouts mean seconds of delay, not minutes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from arq import Worker
from arq.cron import CronJob
from arq.worker import Function, func

from service_kit.clock import Clock, SystemClock
from service_kit.config import ServiceSettings
from service_kit.db import Database
from service_kit.http import ServiceClient
from service_kit.outbox import OutboxMessageMixin, relay_forever
from service_kit.queue import queue_name, redis_settings
from service_kit.telemetry import JOBS

log = logging.getLogger(__name__)

JobFn = Callable[..., Awaitable[Any]]
JOB_TIMEOUT_SECONDS = 20


def job(name: str, service: str) -> Callable[[JobFn], Function]:
    """Register a coroutine as the arq job ``name`` ("domain.verb"), counted in metrics."""

    def wrap(fn: JobFn) -> Function:
        @functools.wraps(fn)
        async def counted(ctx: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
            try:
                result = await fn(ctx, *args, **kwargs)
            except Exception:
                JOBS.labels(service, name, "error").inc()
                raise
            JOBS.labels(service, name, "ok").inc()
            return result

        return func(counted, name=name, timeout=JOB_TIMEOUT_SECONDS)

    return wrap


async def open_context(
    ctx: dict[str, Any], settings: ServiceSettings, clock: Clock | None = None
) -> dict[str, Any]:
    """Fill a job context; used by the worker and by tests that run jobs in-process."""
    ctx["settings"] = settings
    ctx["db"] = Database(settings.database_url, pool_size=settings.db_pool_size)
    ctx["http"] = ServiceClient(settings)
    ctx["clock"] = clock or SystemClock()
    return ctx


async def close_context(ctx: dict[str, Any]) -> None:
    await ctx["http"].aclose()
    await ctx["db"].dispose()


def build_worker(
    *,
    service: str,
    settings: ServiceSettings,
    functions: Sequence[Function],
    outbox_model: type[OutboxMessageMixin],
    cron_jobs: Sequence[CronJob] = (),
    clock: Clock | None = None,
    burst: bool = False,
    run_relay: bool = True,
    extra_context: Callable[[dict[str, Any]], Awaitable[None]] | None = None,
) -> Worker:
    async def on_startup(ctx: dict[str, Any]) -> None:
        await open_context(ctx, settings, clock)
        if extra_context is not None:
            await extra_context(ctx)
        if run_relay:
            ctx["relay_task"] = asyncio.create_task(
                relay_forever(
                    ctx["db"],
                    outbox_model,
                    ctx["redis"],
                    settings.queue_prefix,
                    settings.outbox_poll_seconds,
                    settings.outbox_batch_size,
                )
            )

    async def on_shutdown(ctx: dict[str, Any]) -> None:
        task = ctx.get("relay_task")
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await close_context(ctx)

    return Worker(
        functions=list(functions),
        cron_jobs=list(cron_jobs) or None,
        redis_settings=redis_settings(settings.redis_url),
        queue_name=queue_name(settings.queue_prefix, service),
        on_startup=on_startup,
        on_shutdown=on_shutdown,
        job_timeout=JOB_TIMEOUT_SECONDS,
        max_tries=10,
        keep_result=3600,
        burst=burst,
        poll_delay=0.1,
        handle_signals=not burst,
        health_check_key=f"{settings.queue_prefix}:health:{service}",
    )
