"""The reward service's arq worker."""

from __future__ import annotations

from arq import Worker

from reward_service.config import RewardSettings
from reward_service.db import OutboxMessage
from reward_service.records.tasks import FUNCTIONS as RECORD_FUNCTIONS
from service_kit.clock import Clock
from service_kit.worker import build_worker

FUNCTIONS = [*RECORD_FUNCTIONS]


def create_worker(
    settings: RewardSettings | None = None, *, clock: Clock | None = None, burst: bool = False
) -> Worker:
    return build_worker(
        service="reward",
        settings=settings or RewardSettings(),
        functions=FUNCTIONS,
        outbox_model=OutboxMessage,
        clock=clock,
        burst=burst,
    )
