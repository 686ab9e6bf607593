"""Segment jobs: the periodic pull of external segment sources."""

from __future__ import annotations

import logging
from typing import Any

from arq.cron import CronJob, cron

from activity_service.segments import service
from activity_service.segments.repository import SegmentRepository
from service_kit.errors import ProblemError
from service_kit.worker import job

log = logging.getLogger(__name__)

SEGMENT_REFRESH_EXTERNAL = "segment.refresh_external"


async def refresh_all_external(ctx: dict[str, Any]) -> int:
    """Refresh every external segment, each in its own transaction; a failing source is
    recorded on its segment and leaves its membership as it was."""
    async with ctx["db"].session() as session:
        segments = [
            (s.tenant_id, s.id) for s in await SegmentRepository.from_session(session).external()
        ]
    refreshed = 0
    for tenant_id, segment_id in segments:
        try:
            async with ctx["db"].session() as session:
                await service.refresh_external(
                    session,
                    tenant_id,
                    segment_id,
                    ctx["http"],
                    await ctx["clocks"].now(tenant_id, session),
                )
            refreshed += 1
        except ProblemError as exc:
            log.warning("external segment %s refresh failed: %s", segment_id, exc.detail)
            async with ctx["db"].session() as session:
                await service.note_refresh_failure(session, segment_id, exc.detail)
    return refreshed


@job(SEGMENT_REFRESH_EXTERNAL, "activity")
async def refresh_external_segments(
    ctx: dict[str, Any], payload: dict[str, Any] | None = None
) -> int:
    return await refresh_all_external(ctx)


FUNCTIONS = [refresh_external_segments]

# Every 5 minutes, so a source feeding a 5-minute activity is at most one refresh behind.
CRON_JOBS: list[CronJob] = [
    cron(
        refresh_all_external,
        name="segment.refresh_external.cron",
        minute=set(range(0, 60, 5)),
        run_at_startup=False,
        unique=True,
        timeout=60,
    )
]
