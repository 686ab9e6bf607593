"""The referral graph's rules (SPEC §2.2): binding, changing, freezing, and the queries of
the operator tabs, the per-user view and the inviter counts."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from contracts import jobs
from contracts.payloads import BindingChanged, Node
from referral_service.bindings import rules
from referral_service.bindings.completions import CompletionSource
from referral_service.bindings.models import Binding, BindingHistory
from referral_service.bindings.repository import BindingRepository
from referral_service.bindings.schemas import (
    BindingHistoryRead,
    BindingRead,
    BindingRole,
    Channel,
    InviteeBindings,
    InviterStats,
    MyInvitee,
    NodeCounts,
    NodeProgress,
    NodeState,
    UserBindingRead,
)
from referral_service.db import OutboxMessage
from service_kit.errors import Conflict, NotFound, Unprocessable
from service_kit.outbox import OutboxRepository
from service_kit.pagination import Page, PageParams

# How often the chain of a registration bind may grow while its locks are being taken
# before the bind gives up (each retry means someone bound the chain's top concurrently).
MAX_LOCK_ROUNDS = 5

# The nodes by name, as bindings store them.
REGISTRATION = Node.registration.value
ACCOUNT_OPENING = Node.account_opening.value
DEPOSIT = Node.deposit.value


def _refuse_self(invitee_id: str, inviter_id: str) -> None:
    if invitee_id == inviter_id:
        raise Unprocessable("A user cannot invite themselves.", code="self_invitation")


def _cycle(inviter_id: str, invitee_id: str, node: Node) -> Conflict:
    return Conflict(
        f"{inviter_id}'s effective {node.value} inviter is (directly or through a chain) "
        f"{invitee_id}; this binding would make {invitee_id} their own effective "
        f"{node.value} inviter.",
        code="binding_cycle",
        node=node.value,
    )


async def _effective_cycle(
    repo: BindingRepository, tenant_id: str, invitee_id: str, inviter_id: str, nodes: list[Node]
) -> Node | None:
    """The first of ``nodes`` at which following effective inviters up from the new
    inviter comes back to the invitee."""
    for node in nodes:
        if await repo.effectively_reaches(tenant_id, node.value, inviter_id, invitee_id):
            return node
    return None


def _nodes_following_registration(own: list[Binding]) -> list[Node]:
    """The nodes whose effective inviter a registration binding of the invitee sets: the
    registration node and every node without an inviter of its own (``own``: the
    invitee's bindings)."""
    taken = {b.node for b in own}
    return [
        Node.registration,
        *(n for n in rules.CHANGEABLE_NODES_IN_ORDER if n.value not in taken),
    ]


async def _lock_registration_bind(
    repo: BindingRepository, tenant_id: str, invitee_id: str, inviter_id: str
) -> list[Binding]:
    """Serialise a registration bind with every change that could close a cycle with it,
    then refuse it if it would close one at any node it sets. Returns the invitee's
    bindings, read under the locks.

    Operator changes of the other nodes are kept out by a shared lock on their graphs (they
    take it exclusively). A registration bind locks its invitee exclusively and every user
    on the inviter's effective chains shared, then proves the chains did not grow meanwhile.
    A chain only grows when the user at its top is bound as an invitee, which takes that
    user's lock exclusively: so a concurrent bind that could close a cycle with this one is
    serialised with it and the later one sees the earlier, while the binds of many invitees
    under one inviter (which only read the same chain) go on side by side.
    """
    # The inviter is on every chain: locked in the first statement, two binds crossing
    # (each invitee the other's inviter) queue up in lock order instead of deadlocking.
    await repo.lock_modes(
        exclusive=rules.lock_keys(tenant_id, Node.registration, [invitee_id]),
        shared=[
            *(rules.graph_lock_key(tenant_id, n) for n in rules.CHANGEABLE_NODES),
            *rules.lock_keys(tenant_id, Node.registration, [inviter_id]),
        ],
    )
    # Stable from here: the invitee's other nodes change only under the graph locks, its
    # registration binding only under its own lock.
    own = await repo.for_invitee(tenant_id, invitee_id)
    nodes = _nodes_following_registration(own)
    locked: set[str] = {invitee_id, inviter_id}
    for _ in range(MAX_LOCK_ROUNDS):
        chains = await repo.effective_ancestors_at(tenant_id, [n.value for n in nodes], inviter_id)
        closing = next((n for n in nodes if invitee_id in chains[n.value]), None)
        if closing is not None:
            raise _cycle(inviter_id, invitee_id, closing)
        wanted = {inviter_id}.union(*chains.values())
        if wanted <= locked:
            return own
        await repo.lock(rules.lock_keys(tenant_id, Node.registration, wanted - locked), shared=True)
        locked |= wanted
    raise Conflict("The inviter's chain kept changing; try again.", code="concurrent_change")


async def _lock_changeable_node(
    repo: BindingRepository, tenant_id: str, node: Node, invitee_id: str
) -> None:
    await repo.lock([rules.graph_lock_key(tenant_id, node)])
    await repo.lock(rules.lock_keys(tenant_id, node, [invitee_id]))


def _frozen(node: Node, completed_at: datetime | None) -> Conflict:
    extra = (
        " and the grace for entering an invite code has passed" if node is Node.registration else ""
    )
    return Conflict(
        f"The invitee completed the {node.value} node{extra}; its inviter is frozen.",
        code="node_completed",
        completed_at=completed_at.isoformat() if completed_at else None,
    )


async def _refuse_frozen(
    repo: BindingRepository,
    tenant_id: str,
    invitee_id: str,
    node: Node,
    now: datetime,
    registration_grace: timedelta,
) -> None:
    completed_at = await repo.completed_at(tenant_id, invitee_id, node.value)
    if rules.is_frozen(node, completed_at, now, registration_grace):
        raise _frozen(node, completed_at)


async def _refuse_acknowledged_completion(
    completions: CompletionSource | None, tenant_id: str, invitee_id: str, node: Node
) -> None:
    """The account-opening and deposit nodes freeze the moment their event is acknowledged
    (202), which may be long before a job tells this service: the event log is asked, with
    the node's locks held, as the last step before the change is written. An event stored
    after this answer is concurrent with the change, never acknowledged before it was asked.
    ``completions`` raises 503 ``completion_unknown`` when it cannot know."""
    if completions is None or node is Node.registration:
        return
    completed_at = await completions.completed_at(tenant_id, invitee_id, node)
    if completed_at is not None:
        raise _frozen(node, completed_at)


def record_change(
    session: AsyncSession,
    repo: BindingRepository,
    binding: Binding,
    *,
    action: str,
    previous_inviter_id: str | None,
    actor: str,
    at: datetime,
) -> None:
    """History row and the outbox message for activity_service, in the change's transaction
    (``binding`` as it is after the change; as it was before an unbinding)."""
    inviter_id = None if action == "unbound" else binding.inviter_id
    repo.add_history(
        BindingHistory(
            tenant_id=binding.tenant_id,
            invitee_id=binding.invitee_id,
            node=binding.node,
            action=action,
            previous_inviter_id=previous_inviter_id,
            inviter_id=inviter_id,
            channel=binding.channel,
            activity_code=binding.activity_code,
            actor=actor,
            at=at,
        )
    )
    fact = BindingChanged(
        tenant_id=binding.tenant_id,
        invitee_id=binding.invitee_id,
        node=Node(binding.node),
        inviter_id=inviter_id,
        previous_inviter_id=previous_inviter_id,
        channel=binding.channel,
        action=action,
        at=at,
    )
    OutboxRepository.from_session(session, OutboxMessage).add(
        "activity", jobs.ACTIVITY_BINDING_CHANGED, fact.model_dump(mode="json")
    )


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
    registration_grace: timedelta,
    app_id: str | None = None,
    operator_id: str | None = None,
    activity_code: str | None = None,
    completions: CompletionSource | None = None,
) -> Binding:
    """Bind the invitee's inviter at ``node``: once, before the node is frozen, without
    self-invitation or making anyone their own effective inviter. Exactly one of two
    concurrent binds wins (the other gets 409 ``already_bound``).

    An operator may add a missing registration inviter after the grace for entering an
    invite code (seed §4.1.1): the grace keeps app users from binding late, an operator's
    bind is an audited correction; an existing registration inviter is never replaced."""
    _refuse_self(invitee_id, inviter_id)
    repo = BindingRepository.from_session(session)
    if node is Node.registration:
        own = await _lock_registration_bind(repo, tenant_id, invitee_id, inviter_id)
        existing = next((b for b in own if b.node == node.value), None)
    else:
        await _lock_changeable_node(repo, tenant_id, node, invitee_id)
        existing = await repo.get(tenant_id, invitee_id, node.value)
    if not (node is Node.registration and channel is Channel.operator):
        await _refuse_frozen(repo, tenant_id, invitee_id, node, at, registration_grace)
    if existing is not None:
        raise Conflict(
            f"The invitee already has a {node.value} inviter.",
            code="already_bound",
        )
    if node is not Node.registration and await repo.effectively_reaches(
        tenant_id, node.value, inviter_id, invitee_id
    ):
        raise _cycle(inviter_id, invitee_id, node)
    await _refuse_acknowledged_completion(completions, tenant_id, invitee_id, node)
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
            "activity_code": activity_code,
            "bound_at": at,
            "created_at": at,
            "updated_at": at,
        }
    )
    if binding is None:  # lost a race the locks did not cover (e.g. rows written by hand)
        raise Conflict(f"The invitee already has a {node.value} inviter.", code="already_bound")
    record_change(
        session, repo, binding, action="bound", previous_inviter_id=None, actor=actor, at=at
    )
    return binding


async def set_inviter(
    session: AsyncSession,
    *,
    tenant_id: str,
    invitee_id: str,
    inviter_id: str,
    node: Node,
    actor: str,
    operator_id: str,
    at: datetime,
    completions: CompletionSource | None = None,
) -> tuple[Binding, str | None]:
    """An operator binds or changes the account-opening or deposit inviter of an invitee
    who has not completed that node. Returns the binding and the action taken (``bound``,
    ``rebound``, or None when the inviter was already this one)."""
    if node not in rules.CHANGEABLE_NODES:
        raise Unprocessable(
            "The registration inviter is bound once and cannot be changed; operators change "
            "the account-opening and deposit inviters.",
            code="node_not_changeable",
        )
    _refuse_self(invitee_id, inviter_id)
    repo = BindingRepository.from_session(session)
    await _lock_changeable_node(repo, tenant_id, node, invitee_id)
    await _refuse_frozen(repo, tenant_id, invitee_id, node, at, timedelta(0))
    current = await repo.get(tenant_id, invitee_id, node.value)
    if current is not None and current.inviter_id == inviter_id:
        return current, None
    if await repo.effectively_reaches(tenant_id, node.value, inviter_id, invitee_id):
        raise _cycle(inviter_id, invitee_id, node)
    await _refuse_acknowledged_completion(completions, tenant_id, invitee_id, node)
    values = {
        "inviter_id": inviter_id,
        "channel": Channel.operator.value,
        "operator_id": operator_id,
        "bound_at": at,
        "updated_at": at,
    }
    if current is None:
        binding = await repo.insert_if_unbound(
            {
                "id": uuid.uuid4(),
                "tenant_id": tenant_id,
                "invitee_id": invitee_id,
                "node": node.value,
                "created_at": at,
                **values,
            }
        )
        action, previous = "bound", None
    else:
        previous = current.inviter_id
        binding = await repo.change_inviter(tenant_id, invitee_id, node.value, previous, values)
        action = "rebound"
    if binding is None:
        raise Conflict("The binding changed meanwhile; reload it.", code="concurrent_change")
    record_change(
        session, repo, binding, action=action, previous_inviter_id=previous, actor=actor, at=at
    )
    return binding, action


async def unbind(
    session: AsyncSession,
    *,
    tenant_id: str,
    invitee_id: str,
    node: Node,
    actor: str,
    at: datetime,
    completions: CompletionSource | None = None,
) -> Binding:
    """An operator removes the account-opening or deposit inviter of an invitee who has not
    completed that node; the registration inviter then applies again there. The history
    keeps the removed binding. Returns the binding as it was."""
    if node not in rules.CHANGEABLE_NODES:
        # The request can never succeed, whatever the state: refused as a change is (422).
        raise Unprocessable(
            "The registration inviter is the origin of the invitation tree and of the "
            "cumulative invitation totals: it is never removed or replaced.",
            code="node_not_changeable",
        )
    repo = BindingRepository.from_session(session)
    await _lock_changeable_node(repo, tenant_id, node, invitee_id)
    await _refuse_frozen(repo, tenant_id, invitee_id, node, at, timedelta(0))
    current = await repo.get(tenant_id, invitee_id, node.value)
    if current is None:
        raise NotFound(
            f"{invitee_id} has no {node.value} inviter of its own to remove.",
            code="binding_not_found",
        )
    # Without its own inviter the node falls back to the registration inviter, which must
    # not make the invitee their own effective inviter there.
    fallback = await repo.get(tenant_id, invitee_id, Node.registration.value)
    if fallback is not None:
        await repo.delete(current)  # walk the graph as it will be
        if await repo.effectively_reaches(tenant_id, node.value, fallback.inviter_id, invitee_id):
            raise _cycle(fallback.inviter_id, invitee_id, node)
    await _refuse_acknowledged_completion(completions, tenant_id, invitee_id, node)
    if fallback is None:
        await repo.delete(current)
    record_change(
        session,
        repo,
        current,
        action="unbound",
        previous_inviter_id=current.inviter_id,
        actor=actor,
        at=at,
    )
    return current


async def complete_node(
    session: AsyncSession,
    tenant_id: str,
    user_id: str,
    node: Node,
    at: datetime,
    event_id: str | None = None,
    *,
    locked: bool = False,
) -> bool:
    """Record that the user completed ``node`` (idempotent); True the first time.

    Takes the invitee's lock of that node (unless this transaction holds it: ``locked``),
    so a bind that checked "not completed" commits before the completion lands, never
    after it."""
    repo = BindingRepository.from_session(session)
    if not locked:
        await repo.lock(rules.lock_keys(tenant_id, node, [user_id]))
    return await repo.mark_completed(tenant_id, user_id, node.value, at, event_id)


async def complete_nodes(
    session: AsyncSession, completions: list[tuple[str, str, Node, datetime, str | None]]
) -> list[bool]:
    """``complete_node`` of many (tenant, user, node, completed at, event id) at once: the
    users' locks of their nodes in one statement, the completions in another. True for
    each that recorded its completion; of several of one (tenant, user, node), the first
    (as one after another would)."""
    firsts: dict[tuple[str, str, str], int] = {}
    for index, (tenant_id, user_id, node, _, _) in enumerate(completions):
        firsts.setdefault((tenant_id, user_id, node.value), index)
    repo = BindingRepository.from_session(session)
    # One global order whatever the tenants and nodes (``lock_modes``).
    await repo.lock([rules.lock_key(t, node, u) for t, u, node, _, _ in completions])
    recorded = await repo.mark_many_completed(
        [(t, u, n, completions[i][3], completions[i][4]) for (t, u, n), i in firsts.items()]
    )
    return [
        firsts[key] == index and key in recorded
        for index, key in enumerate((t, u, node.value) for t, u, node, _, _ in completions)
    ]


async def applied_registrations(
    session: AsyncSession, registrations: list[tuple[str, str, str]]
) -> set[tuple[str, str, str]]:
    """Which of the (tenant, user, event id) registrations were applied already: the
    registration node's completion carries that event id. A registration's bind and its
    completion commit together, so such a registration has nothing left to do, and telling
    it costs one query for a whole delivery instead of the bind's locks and chain walks."""
    done = await BindingRepository.from_session(session).completion_events(
        Node.registration.value, [(tenant, user) for tenant, user, _ in registrations]
    )
    return {r for r in registrations if done.get((r[0], r[1]), None) == r[2]}


def effective_inviters(bindings: dict[str, Binding]) -> dict[Node, str | None]:
    """Where a node has no inviter of its own, the registration inviter applies."""
    return rules.effective_inviters(
        {Node(node): binding.inviter_id for node, binding in bindings.items()}
    )


async def effective_inviters_of(
    session: AsyncSession, tenant_id: str, invitee_ids: list[str]
) -> list[dict[str, str | None]]:
    """The inviter that applies at each node of many invitees (one query): what rewards use.
    Every invitee asked is answered once, in the order asked; unbound ones with nulls. Plain
    items shaped as ``EffectiveInviters`` (built from the rows, no model per invitee)."""
    asked = list(dict.fromkeys(invitee_ids))
    own: dict[str, dict[str, str]] = {invitee: {} for invitee in asked}
    for invitee, node, inviter in await BindingRepository.from_session(session).inviters_of(
        tenant_id, asked
    ):
        own[invitee][node] = inviter
    items = []
    for invitee_id in asked:
        bound = own[invitee_id]
        # The node's own inviter, else the registration inviter (``rules.effective_inviters``).
        fallback = bound.get(REGISTRATION)
        items.append(
            {
                "invitee_id": invitee_id,
                REGISTRATION: fallback,
                ACCOUNT_OPENING: bound.get(ACCOUNT_OPENING) or fallback,
                DEPOSIT: bound.get(DEPOSIT) or fallback,
            }
        )
    return items


async def invitee_bindings(
    session: AsyncSession,
    tenant_id: str,
    invitee_id: str,
    now: datetime,
    registration_grace: timedelta,
) -> InviteeBindings:
    """The three nodes of one invitee with the effective inviter and every change.

    An id unknown in the caller's tenant (including another tenant's user) reads as an
    invitee with nothing bound: the answer is the same, so nothing leaks across tenants."""
    repo = BindingRepository.from_session(session)
    by_node = {b.node: b for b in await repo.for_invitee(tenant_id, invitee_id)}
    completed = await repo.completed_nodes(tenant_id, invitee_id)
    effective = effective_inviters(by_node)
    history = await repo.history_for_invitee(tenant_id, invitee_id)
    nodes = []
    for node in Node:
        own = by_node.get(node.value)
        completed_at = completed.get(node.value)
        read = None
        if own is not None:
            read = BindingRead.model_validate(own).model_copy(update={"completed_at": completed_at})
        nodes.append(
            NodeState(
                node=node,
                binding=read,
                effective_inviter_id=effective[node],
                completed_at=completed_at,
                frozen=rules.is_frozen(node, completed_at, now, registration_grace),
            )
        )
    return InviteeBindings(
        invitee_id=invitee_id,
        nodes=nodes,
        history=[BindingHistoryRead.model_validate(h) for h in history],
    )


async def _with_completions(
    repo: BindingRepository, tenant_id: str, rows: list[Binding]
) -> list[tuple[Binding, datetime | None]]:
    done = await repo.completions_of(tenant_id, [(b.invitee_id, b.node) for b in rows])
    return [(b, done.get((b.invitee_id, b.node))) for b in rows]


async def list_bindings(
    session: AsyncSession,
    tenant_id: str,
    params: PageParams,
    *,
    node: Node | None = None,
    invitee_id: str | None = None,
    inviter_id: str | None = None,
) -> Page[BindingRead]:
    """The operator tabs (one node each) with search by invitee or inviter."""
    repo = BindingRepository.from_session(session)
    rows, cursor = await repo.page(
        tenant_id,
        params,
        node=node.value if node else None,
        invitee_id=invitee_id,
        inviter_id=inviter_id,
    )
    items = [
        BindingRead.model_validate(b).model_copy(update={"completed_at": at})
        for b, at in await _with_completions(repo, tenant_id, rows)
    ]
    return Page[BindingRead](items=items, next_cursor=cursor)


async def user_bindings(
    session: AsyncSession, tenant_id: str, user_id: str, params: PageParams
) -> Page[UserBindingRead]:
    """Every binding where the user is the invitee or the inviter, newest first."""
    repo = BindingRepository.from_session(session)
    rows, cursor = await repo.page(tenant_id, params, either_user_id=user_id)
    items = [
        UserBindingRead(
            **BindingRead.model_validate(b).model_dump(),
            role=BindingRole.invitee if b.invitee_id == user_id else BindingRole.inviter,
        ).model_copy(update={"completed_at": at})
        for b, at in await _with_completions(repo, tenant_id, rows)
    ]
    return Page[UserBindingRead](items=items, next_cursor=cursor)


async def inviter_stats(
    session: AsyncSession,
    tenant_id: str,
    inviter_id: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    completed_only: bool = False,
) -> InviterStats:
    if since is not None and until is not None and since >= until:
        raise Unprocessable("`from` must be before `until`.", code="invalid_window")
    counts = await BindingRepository.from_session(session).inviter_counts(
        tenant_id, inviter_id, since=since, until=until, completed_only=completed_only
    )
    return InviterStats(
        inviter_id=inviter_id,
        since=since,
        until=until,
        completed_only=completed_only,
        nodes=[
            NodeCounts(
                node=node,
                invitee_count=counts.get(node.value, (0, 0))[0],
                effective_invitee_count=counts.get(node.value, (0, 0))[1],
            )
            for node in Node
        ],
    )


async def my_invitees(
    session: AsyncSession, tenant_id: str, inviter_id: str, params: PageParams
) -> Page[MyInvitee]:
    """The app's "my invitees": everyone bound to the caller at any node, newest first,
    with their progress through the three nodes (completions as this service has heard of
    them) and whether each node's rewards are the caller's."""
    repo = BindingRepository.from_session(session)
    firsts, cursor = await repo.invitees_page(tenant_id, inviter_id, params)
    invitee_ids = [b.invitee_id for b in firsts]
    by_invitee: dict[str, dict[str, Binding]] = {i: {} for i in invitee_ids}
    for binding in await repo.for_invitees(tenant_id, invitee_ids):
        by_invitee[binding.invitee_id][binding.node] = binding
    done = await repo.completions_of(tenant_id, [(i, n.value) for i in invitee_ids for n in Node])
    items = []
    for first in firsts:
        effective = effective_inviters(by_invitee[first.invitee_id])
        items.append(
            MyInvitee(
                invitee_id=first.invitee_id,
                bound_at=first.bound_at,
                channel=Channel(first.channel),
                nodes=[
                    NodeProgress(
                        node=node,
                        completed_at=done.get((first.invitee_id, node.value)),
                        mine=effective[node] == inviter_id,
                    )
                    for node in Node
                ],
            )
        )
    return Page[MyInvitee](items=items, next_cursor=cursor)
