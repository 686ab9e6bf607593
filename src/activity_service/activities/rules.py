"""Pure rules of activity configuration and lifecycle (SPEC §1.3, §1.4): no I/O."""

from __future__ import annotations

import secrets
from datetime import datetime
from enum import StrEnum

# Languages are the platform's, not the activity service's: every user view negotiates and
# falls back the same way. Re-exported here for the activity service's callers.
from service_kit.i18n import (  # noqa: F401
    DEFAULT_LANGUAGE,
    LANGUAGES,
    NAME_FALLBACKS,
    localized,
    pick_language,
)


class ActivityKind(StrEnum):
    referral = "referral"
    basic = "basic"
    team = "team"
    non_standard = "non_standard"


STANDARD_KINDS = frozenset({ActivityKind.referral, ActivityKind.basic, ActivityKind.team})


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


class TeamTask(StrEnum):
    """The tasks of team grants: the initiator's reward and each helper's (SPEC §1.8)."""

    team_initiator = "team_initiator"
    team_assist = "team_assist"


# The task a grant records: a rule's task, or a team role's.
GrantTask = TaskType | TeamTask


class BasicAttribute(StrEnum):
    """SPEC §1.6."""

    unlimited = "unlimited"
    new_user = "new_user"
    old_user = "old_user"


class ReferralAttribute(StrEnum):
    """SPEC §1.7: regular counts into invitation totals (one at a time); marketing does not."""

    regular = "regular"
    marketing = "marketing"


class RewardType(StrEnum):
    fixed = "fixed"
    tiered = "tiered"


class GenerationTiming(StrEnum):
    """SPEC §1.5: reward generation timing of a basic activity."""

    real_time = "real_time"
    at_end = "at_end"


class TeamForm(StrEnum):
    """Team activity forms of the seed; only ``assist`` (助力得奖) is online."""

    assist = "assist"
    basic_team = "basic_team"
    team_split = "team_split"


AVAILABLE_TEAM_FORMS = frozenset({TeamForm.assist})


class CostType(StrEnum):
    marketing_promotion = "marketing_promotion"
    daily_operations = "daily_operations"
    rebate = "rebate"


class SegmentRefresh(StrEnum):
    """How stale the segment snapshot used for eligibility may be (SPEC §1.9)."""

    five_minutes = "5m"
    one_day = "1d"


ACTION_TASKS = frozenset(
    {
        TaskType.register,
        TaskType.download,
        TaskType.open_account,
        TaskType.enterprise_certification,
    }
)
"""Tasks completed by one action; they take no threshold."""

HELPERS_MIN, HELPERS_MAX = 2, 10


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


class Operation(StrEnum):
    view = "view"
    edit = "edit"
    close = "close"
    publish = "publish"
    delete = "delete"


ALLOWED_OPERATIONS: dict[ActivityStatus, frozenset[Operation]] = {
    ActivityStatus.draft: frozenset(
        {Operation.view, Operation.edit, Operation.close, Operation.publish, Operation.delete}
    ),
    ActivityStatus.running: frozenset({Operation.view, Operation.edit, Operation.close}),
    ActivityStatus.ended: frozenset({Operation.view}),
    ActivityStatus.closed: frozenset({Operation.view}),
}
"""The lifecycle table of SPEC §1.3."""

FORBIDDEN_CODES: dict[Operation, str] = {
    Operation.edit: "activity_not_editable",
    Operation.close: "activity_not_closable",
    Operation.publish: "activity_not_draft",
    # Only a draft never reached a user: anything published has grants, outcomes and
    # records that refer to it, so it is closed instead.
    Operation.delete: "activity_not_deletable",
}


def allowed(status: ActivityStatus, operation: Operation) -> bool:
    return operation in ALLOWED_OPERATIONS[status]


# Crockford-style base32 without I, L, O, U: unambiguous when read aloud or typed.
CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_code(prefix: str, length: int = 8) -> str:
    return prefix + "".join(secrets.choice(CODE_ALPHABET) for _ in range(length))
