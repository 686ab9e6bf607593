from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from referral_service.invite_codes.models import InviteCode

# One probe of the (tenant, app, code) unique index per code (a LATERAL subquery kept as
# such by OFFSET 0): ``code = ANY(…)`` without the app read every code of the tenant.
_OWNERS_OF = text(
    """
SELECT k.app_id, k.code, c.user_id
FROM unnest(CAST(:apps AS text[]), CAST(:codes AS text[])) AS k(app_id, code)
CROSS JOIN LATERAL (
    SELECT user_id FROM invite_codes
    WHERE tenant_id = :tenant AND app_id = k.app_id AND code = k.code
    OFFSET 0
) AS c
"""
)


class InviteCodeRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @classmethod
    def from_session(cls, session: AsyncSession) -> InviteCodeRepository:
        return cls(session)

    async def for_user(self, tenant_id: str, app_id: str, user_id: str) -> InviteCode | None:
        return await self.session.scalar(
            select(InviteCode).where(
                InviteCode.tenant_id == tenant_id,
                InviteCode.app_id == app_id,
                InviteCode.user_id == user_id,
            )
        )

    async def by_code(
        self, tenant_id: str, code: str, app_id: str | None = None
    ) -> InviteCode | None:
        stmt = select(InviteCode).where(InviteCode.tenant_id == tenant_id, InviteCode.code == code)
        if app_id is not None:
            stmt = stmt.where(InviteCode.app_id == app_id)
        return (await self.session.scalars(stmt.limit(1))).first()

    async def owners_of(
        self, tenant_id: str, codes: Collection[tuple[str, str]]
    ) -> dict[tuple[str, str], str]:
        """The owner of each (app, code) of ``codes`` that has one, by (app, code): one probe
        of the (tenant, app, code) unique index per code, whatever the tenant's number of
        codes."""
        if not codes:
            return {}
        rows = await self.session.execute(
            _OWNERS_OF,
            {
                "tenant": tenant_id,
                "apps": [app for app, _ in codes],
                "codes": [code for _, code in codes],
            },
        )
        return {(app, code): user for app, code, user in rows.all()}

    async def insert_if_free(self, tenant_id: str, app_id: str, user_id: str, code: str) -> bool:
        """Insert; False when the user already has a code or the code is taken."""
        result = await self.session.execute(
            insert(InviteCode)
            .values(tenant_id=tenant_id, app_id=app_id, user_id=user_id, code=code)
            .on_conflict_do_nothing()
            .returning(InviteCode.id)
        )
        return result.scalar_one_or_none() is not None
