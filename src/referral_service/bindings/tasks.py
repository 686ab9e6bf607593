"""Referral jobs: facts about users that activity_service sends."""

from __future__ import annotations

import logging
from typing import Any

from arq import Retry
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from contracts import jobs
from contracts.payloads import Node, NodeCompleted, UserRegistered
from referral_service.bindings import service
from referral_service.bindings.schemas import Channel
from referral_service.invite_codes.codes import looks_like_code, normalize_code
from referral_service.invite_codes.repository import InviteCodeRepository
from referral_service.tenant_settings.service import registration_grace
from service_kit.errors import ProblemError
from service_kit.worker import message_job

log = logging.getLogger(__name__)


async def _not_applied(
    ctx: dict[str, Any], session: AsyncSession, payloads: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The registrations of a delivery still to apply (a delivery sent again, or a try that
    stopped at its time budget, skips the applied ones without taking their locks)."""
    keys: list[tuple[str, str, str] | None] = []
    for payload in payloads:
        try:
            fact = UserRegistered.model_validate(payload)
        except ValidationError:  # left to the message's own run, which reports it
            keys.append(None)
            continue
        keys.append((fact.tenant_id, fact.user_id, fact.event_id))
    applied = await service.applied_registrations(session, [k for k in keys if k is not None])
    if applied:
        log.info("registrations already applied: %d of %d", len(applied), len(payloads))
    return [p for p, key in zip(payloads, keys, strict=True) if key not in applied]


# Isolated: a bind holds advisory locks on the inviter's chain until its transaction ends.
@message_job(jobs.REFERRAL_USER_REGISTERED, "referral", isolated=True, pending=_not_applied)
async def user_registered(
    ctx: dict[str, Any], session: AsyncSession, payload: dict[str, Any]
) -> str:
    """Bind the new user to the invite code's owner, then complete the registration node.

    Re-running it is harmless: the binding exists (already_bound) and the completion is
    recorded once. A refused bind (unknown code, cycle, self) still completes the node.
    """
    fact = UserRegistered.model_validate(payload)
    outcome = "no_code"
    if fact.invite_code:
        code = normalize_code(fact.invite_code)
        owner = None
        if looks_like_code(code):
            owner = await InviteCodeRepository.from_session(session).by_code(
                fact.tenant_id, code, fact.app_id
            )
        if owner is None:
            outcome = "unknown_code"
        else:
            grace = await registration_grace(
                session, fact.tenant_id, ctx["settings"].registration_bind_grace_hours
            )
            try:
                async with session.begin_nested():
                    await service.bind(
                        session,
                        tenant_id=fact.tenant_id,
                        invitee_id=fact.user_id,
                        inviter_id=owner.user_id,
                        node=Node.registration,
                        channel=Channel(fact.channel or Channel.invite_code),
                        actor="system:registration",
                        at=fact.registered_at,
                        registration_grace=grace,
                        app_id=fact.app_id,
                        activity_code=fact.activity_code,
                    )
                outcome = "bound"
            except ProblemError as refused:
                if refused.code == "concurrent_change":
                    # PostgreSQL broke a tie between two binds of one chain: try again, as
                    # recording it would complete the node without a binding.
                    raise Retry(defer=1) from refused
                outcome = refused.code
    await service.complete_node(
        session,
        fact.tenant_id,
        fact.user_id,
        Node.registration,
        fact.registered_at,
        fact.event_id,
    )
    log.info("registration of %s: %s", fact.user_id, outcome)
    return outcome


@message_job(jobs.REFERRAL_NODE_COMPLETED, "referral")
async def node_completed(
    ctx: dict[str, Any], session: AsyncSession, payload: dict[str, Any]
) -> bool:
    """The invitee completed a node (account opened, first deposit): freeze its inviter.
    Idempotent on (tenant, user, node); the first completion's time is kept."""
    fact = NodeCompleted.model_validate(payload)
    return await service.complete_node(
        session, fact.tenant_id, fact.user_id, fact.node, fact.completed_at, fact.event_id
    )


FUNCTIONS = [user_registered, node_completed]
