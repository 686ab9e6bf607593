"""Activity jobs: evaluation of stored events, and the grant ledger following records."""

from __future__ import annotations

from typing import Any

from activity_service.evaluation import service
from contracts import jobs
from contracts.payloads import BindingChanged, RecordStatusChanged
from service_kit.worker import job


@job(jobs.ACTIVITY_EVALUATE_EVENT, "activity")
async def evaluate_event(ctx: dict[str, Any], payload: dict[str, Any]) -> int:
    async with ctx["db"].session() as session:
        grants = await service.evaluate_event(session, payload["tenant_id"], payload["event_id"])
    return len(grants)


@job(jobs.ACTIVITY_RECORD_STATUS_CHANGED, "activity")
async def record_status_changed(ctx: dict[str, Any], payload: dict[str, Any]) -> None:
    change = RecordStatusChanged.model_validate(payload)
    async with ctx["db"].session() as session:
        await service.follow_record_status(session, change)


@job(jobs.ACTIVITY_BINDING_CHANGED, "activity")
async def binding_changed(ctx: dict[str, Any], payload: dict[str, Any]) -> None:
    """Referral bindings are read live from referral_service when a task completes, so a
    change needs no local state yet; the fact is validated and counted."""
    BindingChanged.model_validate(payload)


FUNCTIONS = [evaluate_event, record_status_changed, binding_changed]
