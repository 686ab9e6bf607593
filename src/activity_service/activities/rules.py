"""Pure rules of activity configuration and lifecycle (SPEC §1.3, §1.4): no I/O."""

from __future__ import annotations

import secrets
from datetime import datetime
from enum import StrEnum


class ActivityKind(StrEnum):
    referral = "referral"
    basic = "basic"
    team = "team"
    non_standard = "non_standard"


class ActivityStatus(StrEnum):
    draft = "draft"
    running = "running"
    ended = "ended"
    closed = "closed"


class TaskType(StrEnum):
    register = "register"
    download = "download"
    open_account = "open_account"
    net_transfer_in = "net_transfer_in"
    net_deposit = "net_deposit"
    net_position_transfer = "net_position_transfer"
    deposit_reached = "deposit_reached"
    transfer_reached = "transfer_reached"
    net_asset_reached = "net_asset_reached"
    first_deposit = "first_deposit"
    first_transfer = "first_transfer"
    enterprise_certification = "enterprise_certification"


ACTION_TASKS = frozenset(
    {
        TaskType.register,
        TaskType.download,
        TaskType.open_account,
        TaskType.enterprise_certification,
    }
)
"""Tasks completed by one action; they take no threshold."""


def task_needs_threshold(task: TaskType) -> bool:
    return task not in ACTION_TASKS


def status_of(state: str, ends_at: datetime | None, now: datetime) -> ActivityStatus:
    """The status an operator sees: ``ended`` is derived from the clock."""
    if state == "closed":
        return ActivityStatus.closed
    if state == "draft":
        return ActivityStatus.draft
    if ends_at is not None and now >= ends_at:
        return ActivityStatus.ended
    return ActivityStatus.running


def earns_now(
    state: str, starts_at: datetime | None, ends_at: datetime | None, at: datetime
) -> bool:
    """A task completed at ``at`` counts only in a published activity's window [start, end)."""
    if state != "published":
        return False
    if starts_at is not None and at < starts_at:
        return False
    return not (ends_at is not None and at >= ends_at)


# Crockford-style base32 without I, L, O, U: unambiguous when read aloud or typed.
CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_code(prefix: str, length: int = 8) -> str:
    return prefix + "".join(secrets.choice(CODE_ALPHABET) for _ in range(length))
