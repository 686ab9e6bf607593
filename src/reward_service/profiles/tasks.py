"""The consumer of ``reward.user_profile`` (activity service → reward service)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from contracts import jobs
from contracts.payloads import UserProfileFact
from reward_service.profiles import service
from service_kit.worker import message_job


@message_job(jobs.REWARD_USER_PROFILE, "reward")
async def user_profile(ctx: dict[str, Any], session: AsyncSession, payload: dict[str, Any]) -> bool:
    fact = UserProfileFact.model_validate(payload)
    return await service.record_fact(
        session, fact, await ctx["clocks"].now(fact.tenant_id, session)
    )


FUNCTIONS = [user_profile]
