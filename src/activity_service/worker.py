"""The activity service's arq worker."""

from __future__ import annotations

from typing import Any

import httpx
from arq import Worker

from activity_service.config import ActivitySettings
from activity_service.db import IdempotencyKey, OutboxMessage, SandboxClock
from activity_service.evaluation.tasks import CRON_JOBS as EVALUATION_CRON_JOBS
from activity_service.evaluation.tasks import FUNCTIONS as EVALUATION_FUNCTIONS
from activity_service.events.tasks import CRON_JOBS as EVENTS_CRON_JOBS
from activity_service.segments.tasks import CRON_JOBS as SEGMENT_CRON_JOBS
from activity_service.segments.tasks import FUNCTIONS as SEGMENT_FUNCTIONS
from service_kit.clock import Clock
from service_kit.http import ServiceClient
from service_kit.idempotency.expiry import expire_keys_cron
from service_kit.worker import build_worker

FUNCTIONS = [*EVALUATION_FUNCTIONS, *SEGMENT_FUNCTIONS]
CRON_JOBS = [
    *SEGMENT_CRON_JOBS,
    *EVALUATION_CRON_JOBS,
    *EVENTS_CRON_JOBS,
    expire_keys_cron(IdempotencyKey),
]


def create_worker(
    settings: ActivitySettings | None = None,
    *,
    clock: Clock | None = None,
    burst: bool = False,
    http_mounts: dict[str, httpx.AsyncBaseTransport] | None = None,
) -> Worker:
    settings = settings or ActivitySettings()

    async def extra_context(ctx: dict[str, Any]) -> None:
        if http_mounts:
            # In-process tests reach referral_service over ASGI.
            await ctx["http"].aclose()
            ctx["http"] = ServiceClient(settings, mounts=http_mounts)

    return build_worker(
        service="activity",
        settings=settings,
        functions=FUNCTIONS,
        cron_jobs=CRON_JOBS,
        outbox_model=OutboxMessage,
        sandbox_model=SandboxClock,
        clock=clock,
        burst=burst,
        extra_context=extra_context,
    )
