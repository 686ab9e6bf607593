"""Referral jobs: facts about users that activity_service sends."""

from __future__ import annotations

import logging
from typing import Any

from contracts import jobs
from contracts.payloads import Node, NodeCompleted, UserRegistered
from referral_service.bindings import service
from referral_service.bindings.schemas import Channel
from referral_service.invite_codes.codes import normalize_code
from referral_service.invite_codes.repository import InviteCodeRepository
from service_kit.errors import ProblemError
from service_kit.worker import job

log = logging.getLogger(__name__)


@job(jobs.REFERRAL_USER_REGISTERED, "referral")
async def user_registered(ctx: dict[str, Any], payload: dict[str, Any]) -> str:
    """Bind the new user to the invite code's owner, then freeze the registration node.

    Re-running it is harmless: the binding exists (already_bound) and the completion is
    recorded once.
    """
    fact = UserRegistered.model_validate(payload)
    outcome = "no_code"
    async with ctx["db"].session() as session:
        if fact.invite_code:
            owner = await InviteCodeRepository.from_session(session).by_code(
                fact.tenant_id, normalize_code(fact.invite_code), fact.app_id
            )
            if owner is None:
                outcome = "unknown_code"
            else:
                try:
                    async with session.begin_nested():
                        await service.bind(
                            session,
                            tenant_id=fact.tenant_id,
                            invitee_id=fact.user_id,
                            inviter_id=owner.user_id,
                            node=Node.registration,
                            channel=Channel.invite_code,
                            actor="system:registration",
                            at=fact.registered_at,
                            app_id=fact.app_id,
                        )
                    outcome = "bound"
                except ProblemError as refused:
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


@job(jobs.REFERRAL_NODE_COMPLETED, "referral")
async def node_completed(ctx: dict[str, Any], payload: dict[str, Any]) -> bool:
    fact = NodeCompleted.model_validate(payload)
    async with ctx["db"].session() as session:
        return await service.complete_node(
            session, fact.tenant_id, fact.user_id, fact.node, fact.completed_at, fact.event_id
        )


FUNCTIONS = [user_registered, node_completed]
