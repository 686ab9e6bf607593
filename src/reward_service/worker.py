"""The reward service's arq worker: records from grants, issuance, user profile facts, and
the reconciler cron."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import httpx
from arq import Worker
from arq.cron import CronJob, cron

from reward_service.config import RewardSettings
from reward_service.db import IdempotencyKey, OutboxMessage, SandboxClock
from reward_service.profiles.tasks import FUNCTIONS as PROFILE_FUNCTIONS
from reward_service.records.tasks import FUNCTIONS as RECORD_FUNCTIONS
from reward_service.records.tasks import reconcile
from service_kit.clock import Clock
from service_kit.http import ServiceClient
from service_kit.idempotency.expiry import expire_keys_cron
from service_kit.worker import build_worker

FUNCTIONS = [*RECORD_FUNCTIONS, *PROFILE_FUNCTIONS]


def reconciler_cron(settings: RewardSettings) -> CronJob:
    every = max(1, min(60, settings.reconcile_interval_seconds))
    return cron(
        reconcile.coroutine,
        name=reconcile.name,
        second=set(range(0, 60, every)),
        run_at_startup=True,
        timeout=settings.job_timeout_seconds,
        # A reconciler pass that was missed or killed is simply the next tick's work.
        max_tries=1,
    )


def create_worker(
    settings: RewardSettings | None = None,
    *,
    clock: Clock | None = None,
    burst: bool = False,
    http_mounts: dict[str, httpx.AsyncBaseTransport] | None = None,
    with_reconciler: bool | None = None,
) -> Worker:
    settings = settings or RewardSettings()
    # Short timeouts: a killed worker's job is re-run once its in-progress lease expires
    # (this timeout + 10 s, see service_kit.worker), so issuance recovers within seconds.
    functions = [dataclasses.replace(f, timeout_s=settings.job_timeout_seconds) for f in FUNCTIONS]
    run_cron = (not burst) if with_reconciler is None else with_reconciler

    async def extra_context(ctx: dict[str, Any]) -> None:
        # Deliveries stop at half of these shorter jobs' timeout (see message_job).
        ctx["delivery_budget_seconds"] = settings.job_timeout_seconds / 2
        if http_mounts:
            # In-process tests reach the other apps and the cash system over ASGI.
            await ctx["http"].aclose()
            ctx["http"] = ServiceClient(settings, mounts=http_mounts)

    worker = build_worker(
        service="reward",
        settings=settings,
        functions=functions,
        outbox_model=OutboxMessage,
        sandbox_model=SandboxClock,
        cron_jobs=[
            *([reconciler_cron(settings)] if run_cron else []),
            expire_keys_cron(IdempotencyKey),
        ],
        clock=clock,
        burst=burst,
        extra_context=extra_context,
    )
    worker.job_timeout_s = settings.job_timeout_seconds
    worker.max_jobs = settings.worker_max_jobs
    worker.sem = asyncio.BoundedSemaphore(settings.worker_max_jobs + 1)
    worker.queue_read_limit = max(settings.worker_max_jobs * 5, 100)
    worker.in_progress_timeout_s = settings.job_timeout_seconds + 10
    return worker
