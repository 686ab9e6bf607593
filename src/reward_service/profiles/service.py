"""User profile facts from business events: phone and certified enterprise."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from contracts.payloads import UserProfileFact
from reward_service.profiles.repository import ProfileRepository
from reward_service.profiles.rules import normalize_phone


async def record_fact(session: AsyncSession, fact: UserProfileFact, now: datetime) -> bool:
    """Keep what the event says (the newest fact per field wins); False if it said nothing
    usable (a phone without enough digits is ignored rather than stored unsearchable)."""
    values: dict[str, Any] = {"tenant_id": fact.tenant_id, "user_id": fact.user_id}
    phone = normalize_phone(fact.phone) if fact.phone else None
    if phone is not None:
        values |= {"phone": phone, "phone_at": fact.occurred_at}
    if fact.enterprise_id is not None:
        values |= {
            "enterprise_id": fact.enterprise_id,
            "enterprise_name": fact.enterprise_name,
            "certified_at": fact.occurred_at,
        }
    if len(values) == 2:
        return False
    await ProfileRepository.from_session(session).merge(values, now)
    return True
