from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from reward_service.profiles.repository import users_with_phone
from reward_service.wallet.models import WalletCoupon
from service_kit.db import any_of, json_text, unnest_arrays, unnested_columns
from service_kit.pagination import PageParams, paginate

# The columns of a new entry, with the type its values travel as (one array each).
_NEW_COUPON_COLUMNS = {
    "tenant_id": "text",
    "user_id": "text",
    "record_id": "uuid",
    "code": "text",
    "prize_id": "uuid",
    "coupon_type": "text",
    "title": "jsonb",
    "instructions": "text",
    "status": "text",
    "valid_from": "timestamptz",
    "expires_at": "timestamptz",
}
# New entries written together, in one statement bound as one array per column (the
# driver's executemany bound and executed each row on its own); the id is drawn by the
# database.
_INSERT_COUPONS = text(
    f"""
INSERT INTO wallet_coupons (id, {", ".join(_NEW_COUPON_COLUMNS)})
SELECT gen_random_uuid(), {unnested_columns(_NEW_COUPON_COLUMNS)}
FROM {unnest_arrays(_NEW_COUPON_COLUMNS)}
"""
)


class WalletRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @classmethod
    def from_session(cls, session: AsyncSession) -> WalletRepository:
        return cls(session)

    async def put_if_absent(self, values: dict[str, Any]) -> None:
        """One wallet entry per record: a redelivered issuance adds nothing."""
        await self.session.execute(
            insert(WalletCoupon)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["record_id"])
        )

    async def insert_new(self, rows: list[dict[str, Any]]) -> None:
        """Entries of records moved to Issued in this transaction, which cannot have one
        yet: one statement for them all (their ids drawn by the database)."""
        if rows:
            params = {c: [row.get(c) for row in rows] for c in _NEW_COUPON_COLUMNS}
            params["title"] = [json_text(t) for t in params["title"]]
            await self.session.execute(_INSERT_COUPONS, params)

    async def by_records(self, record_ids: list[uuid.UUID]) -> dict[uuid.UUID, WalletCoupon]:
        if not record_ids:
            return {}
        rows = await self.session.scalars(
            select(WalletCoupon).where(any_of(WalletCoupon.record_id, record_ids))
        )
        return {c.record_id: c for c in rows}

    async def list(
        self, tenant_id: str, params: PageParams, *, user_id: str | None, phone: str | None = None
    ) -> tuple[list[WalletCoupon], str | None]:
        stmt = select(WalletCoupon).where(WalletCoupon.tenant_id == tenant_id)
        if user_id:
            stmt = stmt.where(WalletCoupon.user_id == user_id)
        if phone:
            # The phone is the user's, not the coupon's: it may arrive after the coupon.
            stmt = stmt.where(WalletCoupon.user_id.in_(users_with_phone(tenant_id, phone)))
        return await paginate(self.session, stmt, WalletCoupon, params)

    async def get_for_user(
        self, tenant_id: str, user_id: str, coupon_id: uuid.UUID
    ) -> WalletCoupon | None:
        return await self.session.scalar(
            select(WalletCoupon).where(
                WalletCoupon.tenant_id == tenant_id,
                WalletCoupon.user_id == user_id,
                WalletCoupon.id == coupon_id,
            )
        )

    async def get(self, tenant_id: str, coupon_id: uuid.UUID) -> WalletCoupon | None:
        return await self.session.scalar(
            select(WalletCoupon)
            .where(WalletCoupon.tenant_id == tenant_id, WalletCoupon.id == coupon_id)
            .execution_options(populate_existing=True)
        )

    async def get_by_code(self, tenant_id: str, code: str) -> WalletCoupon | None:
        return await self.session.scalar(
            select(WalletCoupon)
            .where(WalletCoupon.tenant_id == tenant_id, WalletCoupon.code == code)
            .execution_options(populate_existing=True)
        )

    async def mark_used(
        self, coupon_id: uuid.UUID, at: Any, used_by: str, reference: str | None
    ) -> WalletCoupon | None:
        """unused → used by compare-and-set: of two racing uses one matches nothing."""
        stmt = (
            update(WalletCoupon)
            .where(WalletCoupon.id == coupon_id, WalletCoupon.status == "unused")
            .values(status="used", used_at=at, used_by=used_by, used_reference=reference)
            .returning(WalletCoupon)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
        return (await self.session.scalars(stmt)).one_or_none()
