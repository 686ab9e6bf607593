"""Lock-up terms of a record (SPEC §3.3), free of I/O.

Lock expiry = the reward's arrival + the lock period. A reward issued only after the
lock-up has not reached the user yet: its record arrives Locked, and its lock runs from the
record's creation. A reward issued at once arrives when it is Issued, and its lock runs
from then; until then it has no expiry. Either way the condition is checked at expiry
(``reconciler.settle_due_locks``): a Locked record is released or cancelled, an Issued one
keeps its status and is flagged (``lock_result`` "broken") for the operator.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from contracts.payloads import LockUp

HELD = "held"
BROKEN = "broken"


def terms_at_creation(lock: LockUp | None, now: datetime) -> dict[str, Any]:
    """The lock columns of a new record."""
    if lock is None:
        return {
            "lock_amount": None,
            "lock_currency": None,
            "lock_days": None,
            "lock_started_at": None,
            "lock_expires_at": None,
            "lock_issue_after": None,
        }
    runs_now = lock.issue_after_lock
    return {
        "lock_amount": lock.amount,
        "lock_currency": lock.currency,
        "lock_days": lock.days,
        "lock_started_at": now if runs_now else None,
        "lock_expires_at": now + timedelta(days=lock.days) if runs_now else None,
        "lock_issue_after": lock.issue_after_lock,
    }


def terms_at_arrival(
    lock_days: int | None, issue_after: bool | None, started: datetime | None, at: datetime
) -> dict[str, Any]:
    """The lock columns to set when a reward reaches the user (Issued at ``at``): a lock of a
    reward issued at once starts running now; any other record has nothing to change."""
    if not lock_days or issue_after is not False or started is not None:
        return {}
    return {"lock_started_at": at, "lock_expires_at": at + timedelta(days=lock_days)}


def is_running(status: str, lock_expires_at: datetime | None, lock_result: str | None) -> bool:
    """Whether the record counts as 锁仓中: its lock has started and is not settled, and the
    record is still waiting on it (Locked) or was issued with it (Issued)."""
    return lock_expires_at is not None and lock_result is None and status in ("locked", "issued")
