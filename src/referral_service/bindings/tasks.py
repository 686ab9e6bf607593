"""Referral jobs: facts about users that activity_service sends."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from arq import Retry
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from contracts import jobs
from contracts.payloads import NodeCompleted, UserRegistered
from referral_service.bindings import service
from referral_service.bindings.registrations import Registration, apply_registrations
from referral_service.bindings.schemas import Channel
from referral_service.invite_codes.codes import looks_like_code, normalize_code
from referral_service.invite_codes.repository import InviteCodeRepository
from referral_service.tenant_settings.service import registration_grace
from service_kit.errors import ProblemError
from service_kit.outbox.bundles import items_of
from service_kit.worker import chunk_job

log = logging.getLogger(__name__)


# ctx (one job's try): every registration of the delivery validated once, by ``pending``,
# ``prepare`` and the job alike; by the payload's id, with the payload kept alongside, so
# no id is reused while its entry lives.
FACTS = "registration_facts"
# ctx: the ids of the payloads this try found not applied yet (see ``_not_applied``).
NOT_APPLIED = "registrations_not_applied"


def _facts(ctx: dict[str, Any], payloads: list[dict[str, Any]]) -> list[UserRegistered | None]:
    """The registrations ``payloads`` carry; None for a payload that is not one."""
    known: dict[int, tuple[dict[str, Any], UserRegistered | None]] = ctx.setdefault(FACTS, {})
    facts: list[UserRegistered | None] = []
    for payload in payloads:
        entry = known.get(id(payload))
        if entry is None or entry[0] is not payload:
            try:
                fact: UserRegistered | None = UserRegistered.model_validate(payload)
            except ValidationError:  # left to the message's own run, which reports it
                fact = None
            entry = known[id(payload)] = (payload, fact)
        facts.append(entry[1])
    return facts


async def _not_applied(
    ctx: dict[str, Any], session: AsyncSession, payloads: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The registrations of a delivery still to apply (a delivery sent again, or a try that
    stopped at its time budget, skips the applied ones without taking their locks).

    A delivery of many chunks asks once for all of them before its first chunk, then again
    per chunk: the chunk's answer is the one this try just had (``NOT_APPLIED``), since only
    the chunk applies its registrations (a registration sent twice at once, applied by the
    other delivery meanwhile, is bound and completed idempotently)."""
    facts = _facts(ctx, payloads)
    not_applied: set[int] = ctx.setdefault(NOT_APPLIED, set())
    if all(id(payload) in not_applied for payload in payloads):
        return payloads
    keys = [
        None if fact is None else (fact.tenant_id, fact.user_id, fact.event_id) for fact in facts
    ]
    applied = await service.applied_registrations(session, [k for k in keys if k is not None])
    if applied:
        log.info("registrations already applied: %d of %d", len(applied), len(payloads))
    pending = [p for p, key in zip(payloads, keys, strict=True) if key not in applied]
    not_applied.update(id(payload) for payload in pending)
    return pending


# Registrations committed a few at a time: a bind holds advisory locks on the inviter's chain
# until its transaction ends (operators' changes of the graph wait for them), while each
# transaction and the statements writing its rows are shared by the registrations it
# commits.
REGISTRATIONS_PER_TRANSACTION = 20
# ctx (one try of a delivery): the owners of the invite codes it names, read per chunk for
# the codes no earlier chunk named (a code's owner never changes), and each tenant's grace,
# read once (a change of the settings applies from the next delivery).
CODE_OWNERS = "registration_code_owners"
GRACES = "registration_graces"


def _code_of(fact: UserRegistered) -> str | None:
    """The invite code a registration names, when it looks like one."""
    if not fact.invite_code:
        return None
    code = normalize_code(fact.invite_code)
    return code if looks_like_code(code) else None


async def _read_code_owners(
    ctx: dict[str, Any], session: AsyncSession, payloads: list[dict[str, Any]]
) -> None:
    """The owners of every invite code the registrations name (in their apps) and the
    delivery has not read yet, in one query per tenant."""
    owners = _code_owners(ctx)
    wanted: dict[str, set[tuple[str, str]]] = {}
    for fact in _facts(ctx, payloads):
        if fact is not None and (code := _code_of(fact)) is not None:
            if (fact.tenant_id, fact.app_id, code) not in owners:
                wanted.setdefault(fact.tenant_id, set()).add((fact.app_id, code))
    repo = InviteCodeRepository.from_session(session)
    for tenant_id, codes in wanted.items():
        found = await repo.owners_of(tenant_id, codes)
        for app_id, code in codes:
            owners[(tenant_id, app_id, code)] = found.get((app_id, code))


def _code_owners(ctx: dict[str, Any]) -> dict[tuple[str, str, str], str | None]:
    """(tenant, app, code) → the code's owner, or None if it has none; for the codes read
    so far."""
    owners: dict[tuple[str, str, str], str | None] = ctx.setdefault(CODE_OWNERS, {})
    return owners


async def _code_owner(
    ctx: dict[str, Any], session: AsyncSession, fact: UserRegistered, code: str
) -> str | None:
    """The user who owns ``code`` in the registration's app, if anyone."""
    owners = _code_owners(ctx)
    key = (fact.tenant_id, fact.app_id, code)
    if key not in owners:
        found = await InviteCodeRepository.from_session(session).by_code(
            fact.tenant_id, code, fact.app_id
        )
        owners[key] = None if found is None else found.user_id
    return owners[key]


async def _registration_grace(
    ctx: dict[str, Any], session: AsyncSession, tenant_id: str
) -> timedelta:
    """The tenant's grace, read once per try of a delivery."""
    graces: dict[str, timedelta] = ctx.setdefault(GRACES, {})
    if tenant_id not in graces:
        graces[tenant_id] = await registration_grace(
            session, tenant_id, ctx["settings"].registration_bind_grace_hours
        )
    return graces[tenant_id]


@chunk_job(
    jobs.REFERRAL_USER_REGISTERED,
    "referral",
    prepare=_read_code_owners,
    pending=_not_applied,
    per_transaction=REGISTRATIONS_PER_TRANSACTION,
    unpack=items_of,
)
async def user_registered(
    ctx: dict[str, Any], session: AsyncSession, payloads: list[dict[str, Any]]
) -> list[str]:
    """Bind each new user to their invite code's owner, then complete the registration
    node: a chunk of registrations at once (``registrations.apply_registrations``).

    Re-running it is harmless: the binding exists (already_bound) and the completion is
    recorded once. A refused bind (unknown code, cycle, self) still completes the node; a
    refusal is decided before the bind writes anything, so it needs no savepoint.
    """
    facts = [
        UserRegistered.model_validate(payload) if fact is None else fact  # None: raises
        for payload, fact in zip(payloads, _facts(ctx, payloads), strict=True)
    ]
    found: list[Registration] = []
    for fact in facts:
        inviter = None
        if fact.invite_code and (code := _code_of(fact)) is not None:
            inviter = await _code_owner(ctx, session, fact, code)
        found.append(
            Registration(
                tenant_id=fact.tenant_id,
                user_id=fact.user_id,
                registered_at=fact.registered_at,
                event_id=fact.event_id,
                inviter_id=inviter,
                channel=Channel(fact.channel or Channel.invite_code),
                app_id=fact.app_id,
                activity_code=fact.activity_code,
                registration_grace=await _registration_grace(ctx, session, fact.tenant_id),
            )
        )
    try:
        applied = await apply_registrations(session, found)
    except ProblemError as refused:
        if refused.code == "concurrent_change":
            # PostgreSQL broke a tie between two binds of one chain: try again, as recording
            # it would complete the node without a binding.
            raise Retry(defer=1) from refused
        raise
    outcomes = []
    for fact, outcome in zip(facts, applied, strict=True):
        if outcome is None:
            outcome = "unknown_code" if fact.invite_code else "no_code"
        log.info("registration of %s: %s", fact.user_id, outcome)
        outcomes.append(outcome)
    return outcomes


@chunk_job(jobs.REFERRAL_NODE_COMPLETED, "referral")
async def node_completed(
    ctx: dict[str, Any], session: AsyncSession, payloads: list[dict[str, Any]]
) -> list[bool]:
    """Invitees completed a node (account opened, first deposit): freeze their inviters.
    A delivery at once (``service.complete_nodes``): one lock statement, one insert.
    Idempotent on (tenant, user, node); the first completion's time is kept."""
    facts = [NodeCompleted.model_validate(payload) for payload in payloads]
    return await service.complete_nodes(
        session, [(f.tenant_id, f.user_id, f.node, f.completed_at, f.event_id) for f in facts]
    )


FUNCTIONS = [user_registered, node_completed]
