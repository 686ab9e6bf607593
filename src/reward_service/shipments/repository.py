from __future__ import annotations

import builtins
import uuid
from collections.abc import Collection
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from reward_service.shipments.models import Shipment
from service_kit.db import any_of
from service_kit.pagination import PageParams, paginate


class ShipmentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @classmethod
    def from_session(cls, session: AsyncSession) -> ShipmentRepository:
        return cls(session)

    async def insert_if_absent(self, values: dict[str, Any]) -> bool:
        """One shipment per record: a redelivered issuance adds nothing. True if inserted."""
        result = await self.session.execute(
            insert(Shipment)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["record_id"])
            .returning(Shipment.id)
        )
        return result.scalar_one_or_none() is not None

    async def get_by_record(self, record_id: uuid.UUID) -> Shipment | None:
        return await self.session.scalar(select(Shipment).where(Shipment.record_id == record_id))

    async def by_records(self, record_ids: list[uuid.UUID]) -> dict[uuid.UUID, Shipment]:
        if not record_ids:
            return {}
        rows = await self.session.scalars(
            select(Shipment).where(any_of(Shipment.record_id, record_ids))
        )
        return {s.record_id: s for s in rows}

    async def get(self, tenant_id: str, shipment_id: uuid.UUID) -> Shipment | None:
        return await self.session.scalar(
            select(Shipment).where(Shipment.tenant_id == tenant_id, Shipment.id == shipment_id)
        )

    async def get_by_number(self, tenant_id: str, record_number: str) -> Shipment | None:
        return await self.session.scalar(
            select(Shipment).where(
                Shipment.tenant_id == tenant_id, Shipment.record_number == record_number
            )
        )

    async def update_if_status(
        self,
        tenant_id: str,
        shipment_id: uuid.UUID,
        allowed: Collection[str],
        values: dict[str, Any],
        user_id: str | None = None,
    ) -> Shipment | None:
        """Compare-and-set on the shipment status: e.g. an address change racing the
        operator's "shipping" mark cannot slip in after it."""
        stmt = update(Shipment).where(
            Shipment.tenant_id == tenant_id,
            Shipment.id == shipment_id,
            Shipment.status.in_(list(allowed)),
        )
        if user_id is not None:
            stmt = stmt.where(Shipment.user_id == user_id)
        stmt = (
            stmt.values(**values)
            .returning(Shipment)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
        return (await self.session.scalars(stmt)).one_or_none()

    async def list(
        self,
        tenant_id: str,
        params: PageParams,
        *,
        user_id: str | None = None,
        status: str | None = None,
        activity_code: str | None = None,
        record_number: str | None = None,
    ) -> tuple[list[Shipment], str | None]:
        stmt = select(Shipment).where(Shipment.tenant_id == tenant_id)
        if user_id:
            stmt = stmt.where(Shipment.user_id == user_id)
        if status:
            stmt = stmt.where(Shipment.status == status)
        if activity_code:
            stmt = stmt.where(Shipment.activity_code == activity_code)
        if record_number:
            stmt = stmt.where(Shipment.record_number == record_number)
        return await paginate(self.session, stmt, Shipment, params)

    async def all_in_status(
        self, tenant_id: str, statuses: Collection[str], activity_code: str | None = None
    ) -> builtins.list[Shipment]:
        stmt = select(Shipment).where(
            Shipment.tenant_id == tenant_id, Shipment.status.in_(list(statuses))
        )
        if activity_code:
            stmt = stmt.where(Shipment.activity_code == activity_code)
        return list((await self.session.scalars(stmt.order_by(Shipment.created_at))).all())
