"""Reward jobs: records from grants, and issuance."""

from __future__ import annotations

import uuid
from typing import Any

from contracts import jobs
from contracts.payloads import Grant
from reward_service.records import service
from service_kit.worker import job


@job(jobs.REWARD_CREATE_FROM_GRANT, "reward")
async def create_from_grant(ctx: dict[str, Any], payload: dict[str, Any]) -> str | None:
    grant = Grant.model_validate(payload)
    async with ctx["db"].session() as session:
        record = await service.create_from_grant(session, grant, ctx["clock"].now())
    return str(record.id) if record else None


@job(jobs.REWARD_ISSUE, "reward")
async def issue(ctx: dict[str, Any], payload: dict[str, Any]) -> str | None:
    async with ctx["db"].session() as session:
        record = await service.issue(session, uuid.UUID(payload["record_id"]), ctx["clock"].now())
    return record.status if record else None


FUNCTIONS = [create_from_grant, issue]
