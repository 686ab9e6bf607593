"""The referral service's arq worker."""

from __future__ import annotations

from arq import Worker

from referral_service.bindings.tasks import FUNCTIONS as BINDING_FUNCTIONS
from referral_service.config import ReferralSettings
from referral_service.db import IdempotencyKey, OutboxMessage, SandboxClock
from service_kit.clock import Clock
from service_kit.idempotency.expiry import expire_keys_cron
from service_kit.worker import build_worker

FUNCTIONS = [*BINDING_FUNCTIONS]
CRON_JOBS = [expire_keys_cron(IdempotencyKey)]


def create_worker(
    settings: ReferralSettings | None = None, *, clock: Clock | None = None, burst: bool = False
) -> Worker:
    return build_worker(
        service="referral",
        settings=settings or ReferralSettings(),
        functions=FUNCTIONS,
        cron_jobs=CRON_JOBS,
        outbox_model=OutboxMessage,
        sandbox_model=SandboxClock,
        clock=clock,
        burst=burst,
    )
