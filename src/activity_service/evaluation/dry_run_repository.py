"""What a dry-run reads besides events, devices, segments and new-user rewards: when
inviters took part in other regular referral activities (read only; a dry-run writes
nothing)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

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


# The events a dry-run decides by, per user of a chunk (probed by index, as above), with only
# the payload fields the rules read, as text: no JSON to decode for thousands of rows; read
# through the driver's own connection (records, not rows), in the session's transaction.
_FACT_ROWS = """
SELECT u.id, e.type, e.event_id, e.app_id, e.occurred_at, e.amount, e.currency,
       e.enterprise_id, e.enterprise_name
FROM unnest(CAST($2 AS text[])) WITH ORDINALITY AS u(id, n)
CROSS JOIN LATERAL (
    SELECT type, event_id, app_id, occurred_at, payload->>'amount' AS amount,
           payload->>'currency' AS currency, payload->>'enterprise_id' AS enterprise_id,
           payload->>'enterprise_name' AS enterprise_name
    FROM events
    WHERE tenant_id = $1 AND user_id = u.id AND type = ANY(CAST($3 AS text[]))
    OFFSET 0
) AS e
ORDER BY u.n, e.occurred_at, e.event_id
"""


class DryRunRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @classmethod
    def from_session(cls, session: AsyncSession) -> DryRunRepository:
        return cls(session)

    async def fact_records(
        self, tenant_id: str, user_ids: Sequence[str], types: Sequence[str]
    ) -> list[Any]:
        """The users' events of these types (whole history) as the driver's records —
        (user, type, event id, app id, occurred at, amount, currency, enterprise id,
        enterprise name) — user by user in the order given, each user's oldest first with
        ties broken by event id, like ``EventRepository.of_users``."""
        if not user_ids:
            return []
        conn = await self.session.connection()
        raw = await conn.get_raw_connection()
        driver: Any = raw.driver_connection
        return list(await driver.fetch(_FACT_ROWS, tenant_id, list(user_ids), list(types)))

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
