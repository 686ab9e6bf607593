from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import literal, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from referral_service.bindings.models import Binding, BindingHistory, NodeCompletion


class BindingRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @classmethod
    def from_session(cls, session: AsyncSession) -> BindingRepository:
        return cls(session)

    async def insert_if_unbound(self, values: dict[str, Any]) -> Binding | None:
        stmt = (
            insert(Binding)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["tenant_id", "invitee_id", "node"])
            .returning(Binding)
        )
        return (await self.session.scalars(stmt)).one_or_none()

    def add_history(self, entry: BindingHistory) -> None:
        self.session.add(entry)

    async def for_invitee(self, tenant_id: str, invitee_id: str) -> list[Binding]:
        stmt = select(Binding).where(
            Binding.tenant_id == tenant_id, Binding.invitee_id == invitee_id
        )
        return list((await self.session.scalars(stmt)).all())

    async def history_for_invitee(self, tenant_id: str, invitee_id: str) -> list[BindingHistory]:
        stmt = (
            select(BindingHistory)
            .where(BindingHistory.tenant_id == tenant_id, BindingHistory.invitee_id == invitee_id)
            .order_by(BindingHistory.id)
        )
        return list((await self.session.scalars(stmt)).all())

    async def completed_nodes(self, tenant_id: str, user_id: str) -> dict[str, datetime]:
        stmt = select(NodeCompletion.node, NodeCompletion.completed_at).where(
            NodeCompletion.tenant_id == tenant_id, NodeCompletion.user_id == user_id
        )
        return {node: at for node, at in (await self.session.execute(stmt)).all()}

    async def mark_completed(
        self, tenant_id: str, user_id: str, node: str, at: datetime, event_id: str | None
    ) -> bool:
        result = await self.session.execute(
            insert(NodeCompletion)
            .values(
                tenant_id=tenant_id, user_id=user_id, node=node, completed_at=at, event_id=event_id
            )
            .on_conflict_do_nothing(index_elements=["tenant_id", "user_id", "node"])
            .returning(NodeCompletion.id)
        )
        return result.scalar_one_or_none() is not None

    async def reaches(self, tenant_id: str, start_user: str, target_user: str) -> bool:
        """Does following registration inviters up from ``start_user`` reach ``target_user``?

        A recursive query over the (tenant, invitee, node) unique index: cost grows with the
        chain's length, never with the size of the graph. UNION (not UNION ALL) stops on a
        pre-existing loop.
        """
        chain = (
            select(Binding.inviter_id.label("user_id"), literal(1).label("depth"))
            .where(
                Binding.tenant_id == tenant_id,
                Binding.invitee_id == start_user,
                Binding.node == "registration",
            )
            .cte("chain", recursive=True)
        )
        chain = chain.union(
            select(Binding.inviter_id, chain.c.depth + 1).where(
                Binding.tenant_id == tenant_id,
                Binding.invitee_id == chain.c.user_id,
                Binding.node == "registration",
                chain.c.depth < 10_000,
            )
        )
        found = await self.session.scalar(
            select(literal(True)).select_from(chain).where(chain.c.user_id == target_user).limit(1)
        )
        return bool(found)

    async def lock_invitee(self, tenant_id: str, invitee_id: str) -> None:
        """Serialise binds of one invitee (transaction-scoped advisory lock)."""
        await self.session.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"),
            {"k": f"{tenant_id}:{invitee_id}"},
        )
