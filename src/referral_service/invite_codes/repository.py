from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from referral_service.invite_codes.models import InviteCode
from service_kit.db import any_of


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

    async def owners_of(self, tenant_id: str, codes: Collection[str]) -> list[tuple[str, str, str]]:
        """Every app's owner of each of ``codes``: (code, app, user) rows, no entities."""
        if not codes:
            return []
        ic = InviteCode
        stmt = select(ic.code, ic.app_id, ic.user_id).where(
            ic.tenant_id == tenant_id, any_of(ic.code, sorted(codes))
        )
        return [(code, app, user) for code, app, user in (await self.session.execute(stmt)).all()]

    async def insert_if_free(self, tenant_id: str, app_id: str, user_id: str, code: str) -> bool:
        """Insert; False when the user already has a code or the code is taken."""
        result = await self.session.execute(
            insert(InviteCode)
            .values(tenant_id=tenant_id, app_id=app_id, user_id=user_id, code=code)
            .on_conflict_do_nothing()
            .returning(InviteCode.id)
        )
        return result.scalar_one_or_none() is not None
