"""The activity audit trail: who changed what and when, in the change's own transaction."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from activity_service.audit.diff import changes
from activity_service.audit.models import ActivityAudit
from activity_service.audit.repository import AuditRepository
from activity_service.audit.schemas import AuditChange, AuditEntryRead


def record(
    session: AsyncSession,
    *,
    tenant_id: str,
    activity_id: uuid.UUID,
    actor: str,
    action: str,
    version: int,
    before: dict[str, Any] | None,
    after: dict[str, Any],
    at: datetime,
) -> ActivityAudit:
    entry = ActivityAudit(
        id=uuid.uuid4(),
        tenant_id=tenant_id,
        activity_id=activity_id,
        actor=actor,
        action=action,
        version=version,
        changes=changes(before, after),
        created_at=at,
    )
    AuditRepository.from_session(session).add(entry)
    return entry


def to_read(entry: ActivityAudit) -> AuditEntryRead:
    return AuditEntryRead(
        id=entry.id,
        activity_id=entry.activity_id,
        actor=entry.actor,
        action=entry.action,
        version=entry.version,
        changes={k: AuditChange(**v) for k, v in entry.changes.items()},
        at=entry.created_at,
    )
