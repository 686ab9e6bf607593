"""Registrations applied many at a time (SPEC §2.2): each new user's registration node
completes, and a user who signed up with an invite code is bound to its owner.

The rules are those of ``service.bind`` for a registration bind; what differs is that a
chunk of registrations shares each step — one lock statement, one read of the invitees'
bindings and completions, one walk of every inviter's chains, one insert per table —
instead of paying every step once per registration. Registrations that touch each other
(an invitee who is another one's inviter or on their chain, or the same invitee twice) are
applied one after another by ``service.bind`` instead: the shared reads could not see the
chunk's own new bindings.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from contracts import jobs
from contracts.payloads import BindingChanged, Node
from referral_service.bindings import rules, service
from referral_service.bindings.repository import BindingRepository
from referral_service.bindings.schemas import Channel
from service_kit.correlation import stamp
from service_kit.errors import Conflict, ProblemError
from service_kit.outbox.bundles import bundle

BOUND = "bound"
ACTOR = "system:registration"
# Every node a registration binding can set: the registration node, and the others while
# the invitee has no inviter of their own there.
_NODES = [node.value for node in rules.NODES]


@dataclass(frozen=True)
class Registration:
    """A user's sign-up as the referral graph takes it."""

    tenant_id: str
    user_id: str
    registered_at: datetime
    event_id: str
    # The owner of the invite code the user signed up with; None without a usable code.
    inviter_id: str | None = None
    channel: Channel = Channel.invite_code
    app_id: str | None = None
    activity_code: str | None = None
    registration_grace: timedelta = timedelta(0)


async def apply_registrations(
    session: AsyncSession, registrations: list[Registration]
) -> list[str | None]:
    """Complete every registration's node and bind those naming an inviter; per
    registration, ``bound``, the code of the refusal (``self_invitation``,
    ``binding_cycle``, ``node_completed``, ``already_bound``), or None without an inviter.
    Raises ``concurrent_change`` when an inviter's chain kept growing meanwhile."""
    outcomes: list[str | None] = [None] * len(registrations)
    by_tenant: dict[str, list[int]] = {}
    for index, registration in enumerate(registrations):
        by_tenant.setdefault(registration.tenant_id, []).append(index)
    repo = BindingRepository.from_session(session)
    for tenant_id, indexes in by_tenant.items():
        chunk = [registrations[i] for i in indexes]
        for i, outcome in zip(indexes, await _apply(repo, session, tenant_id, chunk), strict=True):
            outcomes[i] = outcome
    return outcomes


async def _apply(
    repo: BindingRepository, session: AsyncSession, tenant_id: str, chunk: list[Registration]
) -> list[str | None]:
    invitees = [r.user_id for r in chunk]
    binds = [r for r in chunk if r.inviter_id is not None]
    inviters = {r.inviter_id for r in binds if r.inviter_id is not None}
    # As ``service.bind`` locks one registration bind (see ``_lock_registration_bind``):
    # every invitee exclusively (their completion too), the inviters and the graphs of the
    # changeable nodes shared; here all in one statement, in one global order.
    await repo.lock_modes(
        exclusive=rules.lock_keys(tenant_id, Node.registration, invitees),
        shared=[
            *(rules.graph_lock_key(tenant_id, n) for n in rules.CHANGEABLE_NODES),
            *rules.lock_keys(tenant_id, Node.registration, inviters),
        ],
    )
    chains, states = await _locked_chains(
        repo, tenant_id, inviters, set(invitees), [r.user_id for r in binds]
    )
    on_chains = inviters.union(
        *(users for by_node in chains.values() for users in by_node.values())
    )
    if len(set(invitees)) < len(invitees) or on_chains & set(invitees):
        # A bind here could close a cycle with, or lengthen the chain of, another one.
        return await _one_after_another(session, chunk)
    outcomes: list[str | None] = []
    rows = []
    for registration in chunk:
        if registration.inviter_id is None:
            outcomes.append(None)
            continue
        refusal = _refusal(registration, *states[registration.user_id])
        outcomes.append(refusal or BOUND)
        if refusal is None:
            rows.append(_binding_row(registration))
    # One message tells activity_service of the chunk's bindings: a bundle of their facts
    # (its consumer reads a bundle as its items), or the fact itself when it is alone.
    facts = [_fact(row) for row in rows]
    bound = await repo.bind_new(
        tenant_id,
        Node.registration.value,
        rows,
        actor=ACTOR,
        queue="activity",
        job_name=jobs.ACTIVITY_BINDING_CHANGED,
        message=stamp(facts[0] if len(facts) == 1 else bundle(facts, tenant_id)),
    )
    if len(bound) < len(rows):  # rows written around the locks (by hand): as ``bind`` says
        raise Conflict("The invitee already has a registration inviter.", code="already_bound")
    await repo.mark_many_completed([_completion_row(r) for r in chunk])
    return outcomes


async def _locked_chains(
    repo: BindingRepository,
    tenant_id: str,
    inviters: set[str],
    locked: set[str],
    invitees: list[str],
) -> tuple[dict[str, dict[str, list[str]]], dict[str, tuple[bool, datetime | None]]]:
    """Every inviter's effective chains at every node, with each user on them locked shared
    and proven unchanged once locked (a chain grows only when its top user is bound, under
    that user's exclusive lock); and, read with the first walk, whether each of
    ``invitees`` (locked exclusively) is bound at the registration node and when they
    completed it."""
    if not inviters:
        return {}, {}
    locked = locked | inviters
    chains, states = await repo.chains_and_states(
        tenant_id, _NODES, inviters, Node.registration.value, invitees
    )
    for round_ in range(service.MAX_LOCK_ROUNDS):
        if round_:
            chains = await repo.effective_ancestors_of(tenant_id, _NODES, inviters)
        wanted = set().union(*(users for by_node in chains.values() for users in by_node.values()))
        if wanted <= locked:
            return chains, states
        await repo.lock(rules.lock_keys(tenant_id, Node.registration, wanted - locked), shared=True)
        locked |= wanted
    raise Conflict("The inviter's chain kept changing; try again.", code="concurrent_change")


def _refusal(registration: Registration, bound: bool, completed_at: datetime | None) -> str | None:
    """Why ``service.bind`` would refuse this registration bind, or None (``bound``,
    ``completed_at``: the invitee's registration binding and completion, read under the
    locks). A self-invitation or a cycle needs the invitee among the inviters or on a
    chain: such a chunk goes one registration after another, so neither is possible here."""
    if rules.is_frozen(
        Node.registration,
        completed_at,
        registration.registered_at,
        registration.registration_grace,
    ):
        return "node_completed"
    if bound:
        return "already_bound"
    return None


async def _one_after_another(session: AsyncSession, chunk: list[Registration]) -> list[str | None]:
    """Registrations that touch each other, each bound seeing the ones before it."""
    outcomes: list[str | None] = []
    for registration in chunk:
        outcome: str | None = None
        if registration.inviter_id is not None:
            try:
                await service.bind(
                    session,
                    tenant_id=registration.tenant_id,
                    invitee_id=registration.user_id,
                    inviter_id=registration.inviter_id,
                    node=Node.registration,
                    channel=registration.channel,
                    actor=ACTOR,
                    at=registration.registered_at,
                    registration_grace=registration.registration_grace,
                    app_id=registration.app_id,
                    activity_code=registration.activity_code,
                )
                outcome = BOUND
            except ProblemError as refused:
                if refused.code == "concurrent_change":
                    raise
                outcome = refused.code
        await service.complete_node(
            session,
            registration.tenant_id,
            registration.user_id,
            Node.registration,
            registration.registered_at,
            registration.event_id,
            locked=True,  # every invitee of the chunk is locked already
        )
        outcomes.append(outcome)
    return outcomes


def _binding_row(registration: Registration) -> dict[str, Any]:
    return {
        "tenant_id": registration.tenant_id,
        "invitee_id": registration.user_id,
        "inviter_id": registration.inviter_id,
        "channel": registration.channel.value,
        "app_id": registration.app_id,
        "activity_code": registration.activity_code,
        "at": registration.registered_at,
    }


def _fact(row: dict[str, Any]) -> dict[str, Any]:
    """What activity_service is told of a registration binding (as ``service.record_change``
    tells it)."""
    return BindingChanged(
        tenant_id=row["tenant_id"],
        invitee_id=row["invitee_id"],
        node=Node.registration,
        inviter_id=row["inviter_id"],
        previous_inviter_id=None,
        channel=row["channel"],
        action="bound",
        at=row["at"],
    ).model_dump(mode="json")


def _completion_row(registration: Registration) -> tuple[str, str, str, datetime, str | None]:
    return (
        registration.tenant_id,
        registration.user_id,
        Node.registration.value,
        registration.registered_at,
        registration.event_id,
    )
