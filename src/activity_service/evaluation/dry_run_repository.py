"""What a dry-run reads besides events, devices, segments and new-user rewards: when
inviters took part in other regular referral activities (read only; a dry-run writes
nothing)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

# Per inviter (probed by index, as the daily run reads by user): the spans in which they
# took part in another regular activity — from their first counted qualification there
# until it ends, and the participation stored now (claimed … ends).
_OTHER_REGULAR = """
SELECT u.id, q.since, a.ends_at
FROM unnest(CAST(:inviter_ids AS text[])) AS u(id)
CROSS JOIN LATERAL (
    SELECT activity_id, min(achieved_at) AS since FROM referral_qualifications
    WHERE tenant_id = :tenant_id AND inviter_id = u.id AND counted
      AND activity_id <> :activity_id
    GROUP BY activity_id OFFSET 0
) AS q
JOIN activities a ON a.tenant_id = :tenant_id AND a.id = q.activity_id
WHERE a.ends_at IS NOT NULL
UNION ALL
SELECT p.inviter_id, p.claimed_at, p.ends_at
FROM regular_participations p
WHERE p.tenant_id = :tenant_id AND p.inviter_id = ANY(CAST(:inviter_ids AS text[]))
  AND p.activity_id <> :activity_id
"""


class DryRunRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @classmethod
    def from_session(cls, session: AsyncSession) -> DryRunRepository:
        return cls(session)

    async def other_regular_spans(
        self, tenant_id: str, activity_id: uuid.UUID, inviter_ids: Sequence[str]
    ) -> dict[str, list[tuple[datetime, datetime]]]:
        """inviter → (from, until) spans of their part in other regular activities."""
        if not inviter_ids:
            return {}
        rows = await self.session.execute(
            text(_OTHER_REGULAR),
            {
                "tenant_id": tenant_id,
                "activity_id": activity_id,
                "inviter_ids": list(inviter_ids),
            },
        )
        spans: dict[str, list[tuple[datetime, datetime]]] = {}
        for inviter, since, until in rows.all():
            spans.setdefault(inviter, []).append((since, until))
        return spans
