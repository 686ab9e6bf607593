"""Pure referral graph rules: effective inviters, freezing, lock ordering."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from contracts.payloads import Node
from referral_service.bindings.rules import (
    CHANGEABLE_NODES,
    effective_inviters,
    graph_lock_key,
    is_frozen,
    lock_keys,
)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
GRACE = timedelta(hours=72)


def test_registration_inviter_applies_where_a_node_has_none() -> None:
    assert effective_inviters({Node.registration: "a"}) == {
        Node.registration: "a",
        Node.account_opening: "a",
        Node.deposit: "a",
    }
    assert effective_inviters({Node.registration: "a", Node.deposit: "d"}) == {
        Node.registration: "a",
        Node.account_opening: "a",
        Node.deposit: "d",
    }


def test_without_registration_inviter_only_own_nodes_apply() -> None:
    assert effective_inviters({Node.account_opening: "o"}) == {
        Node.registration: None,
        Node.account_opening: "o",
        Node.deposit: None,
    }
    assert effective_inviters({}) == dict.fromkeys(Node)


def test_incomplete_nodes_are_open() -> None:
    for node in Node:
        assert not is_frozen(node, None, NOW, GRACE)


def test_completed_account_opening_and_deposit_freeze_at_once() -> None:
    for node in (Node.account_opening, Node.deposit):
        assert is_frozen(node, NOW, NOW, GRACE)
        assert is_frozen(node, NOW + timedelta(hours=1), NOW, GRACE)


def test_registration_stays_open_for_the_grace() -> None:
    registered = NOW - timedelta(hours=71, minutes=59)
    assert not is_frozen(Node.registration, registered, NOW, GRACE)
    assert is_frozen(Node.registration, NOW - GRACE, NOW, GRACE)
    assert is_frozen(Node.registration, NOW, NOW, timedelta(0))


def test_only_account_opening_and_deposit_are_changeable() -> None:
    assert CHANGEABLE_NODES == {Node.account_opening, Node.deposit}


def test_lock_keys_are_unique_sorted_and_scoped() -> None:
    keys = lock_keys("t1", Node.registration, ["b", "a", "b"])
    assert keys == ["t1:registration:a", "t1:registration:b"]
    assert lock_keys("t1", Node.deposit, ["a"]) != lock_keys("t2", Node.deposit, ["a"])
    assert graph_lock_key("t1", Node.deposit) != graph_lock_key("t1", Node.account_opening)
    assert graph_lock_key("t1", Node.deposit) != graph_lock_key("t2", Node.deposit)
