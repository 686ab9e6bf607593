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


ALLOWED_OPERATIONS: dict[ActivityStatus, frozenset[Operation]] = {
    ActivityStatus.draft: frozenset(
        {Operation.view, Operation.edit, Operation.close, Operation.publish}
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
}


def allowed(status: ActivityStatus, operation: Operation) -> bool:
    return operation in ALLOWED_OPERATIONS[status]


# Crockford-style base32 without I, L, O, U: unambiguous when read aloud or typed.
CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_code(prefix: str, length: int = 8) -> str:
    return prefix + "".join(secrets.choice(CODE_ALPHABET) for _ in range(length))


LANGUAGES = ("zh-Hans", "zh-Hant", "en")

# When the wanted language is missing: a Chinese reader prefers the other Chinese script.
NAME_FALLBACKS: dict[str, tuple[str, ...]] = {
    "zh-Hans": ("zh-Hans", "zh-Hant", "en"),
    "zh-Hant": ("zh-Hant", "zh-Hans", "en"),
    "en": ("en", "zh-Hant", "zh-Hans"),
}
DEFAULT_LANGUAGE = "en"


def _language_of_tag(tag: str) -> str | None:
    tag = tag.strip().lower().replace("_", "-")
    if not tag or tag == "*":
        return None
    if tag.startswith("zh"):
        parts = tag.split("-")
        if "hant" in parts or any(p in ("tw", "hk", "mo") for p in parts[1:]):
            return "zh-Hant"
        return "zh-Hans"
    if tag.split("-")[0] == "en":
        return "en"
    return None


def pick_language(accept_language: str | None) -> str:
    """The supported language best matching an ``Accept-Language`` header (q-values honoured)."""
    if not accept_language:
        return DEFAULT_LANGUAGE
    weighted: list[tuple[float, int, str]] = []
    for position, part in enumerate(accept_language.split(",")):
        pieces = part.split(";")
        q = 1.0
        for param in pieces[1:]:
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        language = _language_of_tag(pieces[0])
        if language is not None and q > 0:
            weighted.append((-q, position, language))
    if not weighted:
        return DEFAULT_LANGUAGE
    return sorted(weighted)[0][2]


def localized(name: dict[str, str], language: str) -> str:
    for candidate in NAME_FALLBACKS.get(language, NAME_FALLBACKS[DEFAULT_LANGUAGE]):
        value = name.get(candidate)
        if value:
            return value
    return next((v for v in name.values() if v), "")
