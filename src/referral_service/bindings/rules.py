"""Pure rules of the referral graph (SPEC §2.2), free of I/O so they are unit-tested alone."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from contracts.payloads import Node

# Operators change the account-opening and deposit inviter (seed manual, "Add Account-Opening
# or Deposit Inviter"); the registration inviter is the origin of the whole invitation tree and
# of cumulative invitation totals, so it is bound once and never replaced.
CHANGEABLE_NODES_IN_ORDER = (Node.account_opening, Node.deposit)
CHANGEABLE_NODES = frozenset(CHANGEABLE_NODES_IN_ORDER)


# Every node, in order (iterating the enum itself costs more, once per invitee).
NODES = tuple(Node)


def effective_inviters(own: Mapping[Node, str | None]) -> dict[Node, str | None]:
    """The inviter that applies per node: the node's own, else the registration inviter."""
    fallback = own.get(Node.registration)
    return {node: own.get(node) or fallback for node in NODES}


def is_frozen(
    node: Node, completed_at: datetime | None, now: datetime, registration_grace: timedelta
) -> bool:
    """A completed node's inviter cannot be bound or changed.

    The registration node completes the moment the user signs up, usually before the app
    can show the "enter an invite code" screen; a tenant-configured grace keeps it open for
    a while after that. The other nodes freeze at completion.
    """
    if completed_at is None:
        return False
    if node is Node.registration:
        return now >= completed_at + registration_grace
    return True


def lock_keys(tenant_id: str, node: Node, users: Iterable[str]) -> list[str]:
    """Advisory lock names of a set of users at one node, de-duplicated and in one global
    order, so two transactions locking overlapping sets never deadlock."""
    return sorted({lock_key(tenant_id, node, user) for user in users})


def lock_key(tenant_id: str, node: Node, user: str) -> str:
    """The advisory lock name of one user at one node."""
    return f"{tenant_id}:{node.value}:{user}"


def graph_lock_key(tenant_id: str, node: Node) -> str:
    """One lock per tenant and changeable node: changes there are rare operator actions, and
    because an inviter can be replaced mid-chain, a chain-local lock would not be enough to
    keep two concurrent changes from closing a cycle."""
    return f"{tenant_id}:{node.value}:*graph*"
