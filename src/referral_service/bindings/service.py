"""The referral graph's rules (SPEC §2.2)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from contracts.payloads import Node
from referral_service.bindings.models import Binding, BindingHistory
from referral_service.bindings.repository import BindingRepository
from referral_service.bindings.schemas import (
    BindingHistoryRead,
    BindingRead,
    Channel,
    InviteeBindings,
    NodeState,
)
from service_kit.errors import Conflict, Unprocessable


async def bind(
    session: AsyncSession,
    *,
    tenant_id: str,
    invitee_id: str,
    inviter_id: str,
    node: Node,
    channel: Channel,
    actor: str,
    at: datetime,
    app_id: str | None = None,
    operator_id: str | None = None,
) -> Binding:
    if invitee_id == inviter_id:
        raise Unprocessable("A user cannot invite themselves.", code="self_invitation")
    repo = BindingRepository.from_session(session)
    await repo.lock_invitee(tenant_id, invitee_id)
    completed = await repo.completed_nodes(tenant_id, invitee_id)
    if node.value in completed:
        raise Conflict(
            f"The invitee completed the {node.value} node; its inviter is frozen.",
            code="node_completed",
        )
    if node is Node.registration and await repo.reaches(tenant_id, inviter_id, invitee_id):
        raise Conflict(
            f"{inviter_id} was (directly or not) invited by {invitee_id}; "
            "binding would make a cycle.",
            code="binding_cycle",
        )
    binding = await repo.insert_if_unbound(
        {
            "id": uuid.uuid4(),
            "tenant_id": tenant_id,
            "invitee_id": invitee_id,
            "inviter_id": inviter_id,
            "node": node.value,
            "channel": channel.value,
            "app_id": app_id,
            "operator_id": operator_id,
            "bound_at": at,
        }
    )
    if binding is None:
        raise Conflict(f"The invitee already has a {node.value} inviter.", code="already_bound")
    repo.add_history(
        BindingHistory(
            tenant_id=tenant_id,
            invitee_id=invitee_id,
            node=node.value,
            action="bound",
            previous_inviter_id=None,
            inviter_id=inviter_id,
            channel=channel.value,
            actor=actor,
            at=at,
        )
    )
    return binding


async def complete_node(
    session: AsyncSession,
    tenant_id: str,
    user_id: str,
    node: Node,
    at: datetime,
    event_id: str | None = None,
) -> bool:
    """Record that the user completed ``node`` (idempotent); True the first time."""
    return await BindingRepository.from_session(session).mark_completed(
        tenant_id, user_id, node.value, at, event_id
    )


def effective_inviters(bindings: dict[str, Binding]) -> dict[Node, str | None]:
    """Where a node has no inviter of its own, the registration inviter applies."""
    registration = bindings.get(Node.registration.value)
    fallback = registration.inviter_id if registration else None
    return {
        node: (bindings[node.value].inviter_id if node.value in bindings else fallback)
        for node in Node
    }


async def invitee_bindings(
    session: AsyncSession, tenant_id: str, invitee_id: str
) -> InviteeBindings:
    repo = BindingRepository.from_session(session)
    by_node = {b.node: b for b in await repo.for_invitee(tenant_id, invitee_id)}
    completed = await repo.completed_nodes(tenant_id, invitee_id)
    effective = effective_inviters(by_node)
    history = await repo.history_for_invitee(tenant_id, invitee_id)
    return InviteeBindings(
        invitee_id=invitee_id,
        nodes=[
            NodeState(
                node=node,
                binding=BindingRead.model_validate(by_node[node.value])
                if node.value in by_node
                else None,
                effective_inviter_id=effective[node],
                completed_at=completed.get(node.value),
            )
            for node in Node
        ],
        history=[BindingHistoryRead.model_validate(h) for h in history],
    )
