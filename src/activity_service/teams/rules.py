"""Pure rules of team activities (SPEC §1.8): statuses, names, numbers, helper rewards.
No I/O, unit-tested."""

from __future__ import annotations

import secrets
from datetime import datetime
from enum import StrEnum

from activity_service.activities.rules import earns_now

# Unambiguous letters and digits (no 0/O, 1/I/L, U), as for invite codes.
NUMBER_ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"
NUMBER_LENGTH = 8
INITIATOR_RULE_ID = "initiator"
INITIATOR_TASK = "team_initiator"
HELPER_TASK = "team_assist"
INITIATOR_ROLE = "initiator"
HELPER_ROLE = "helper"


class TeamStatus(StrEnum):
    forming = "forming"
    succeeded = "succeeded"
    failed = "failed"


def activity_over(state: str, ends_at: datetime | None, now: datetime) -> bool:
    """No team can fill any more: the activity was closed or its window has ended."""
    return state == "closed" or (ends_at is not None and now >= ends_at)


def team_status(stored: str, activity_is_over: bool) -> TeamStatus:
    """A team still forming when its activity is over has failed (SPEC §1.8)."""
    if stored == TeamStatus.succeeded:
        return TeamStatus.succeeded
    return TeamStatus.failed if activity_is_over else TeamStatus.forming


def stored_status_for(wanted: TeamStatus, activity_is_over: bool) -> str | None:
    """The stored status matching a requested (derived) status, or None when no team of the
    activity can have it right now."""
    if wanted is TeamStatus.succeeded:
        return "succeeded"
    if wanted is TeamStatus.failed:
        return "forming" if activity_is_over else None
    return None if activity_is_over else "forming"


def stats_of(counts: dict[str, int], activity_is_over: bool) -> dict[str, int]:
    """Stored counts (forming, succeeded) → the four numbers operators see."""
    forming = counts.get("forming", 0)
    succeeded = counts.get("succeeded", 0)
    return {
        "forming": 0 if activity_is_over else forming,
        "succeeded": succeeded,
        "failed": forming if activity_is_over else 0,
        "all": forming + succeeded,
    }


def can_take_part(
    state: str, starts_at: datetime | None, ends_at: datetime | None, now: datetime
) -> str | None:
    """Why a team cannot be started or helped now, or None when it can."""
    if state != "published" or activity_over(state, ends_at, now):
        return "activity_not_running"
    if not earns_now(state, starts_at, ends_at, now):
        return "activity_not_started"
    return None


TEAM_NAME_TEMPLATES = {
    "en": "{nickname}'s team",
    "zh-Hans": "{nickname}的队伍",
    "zh-Hant": "{nickname}的隊伍",
}


def team_name(nickname: str, language: str) -> str:
    """The team name, <initiator nickname>'s team, in the reader's language (English by
    default)."""
    return TEAM_NAME_TEMPLATES.get(language, TEAM_NAME_TEMPLATES["en"]).format(nickname=nickname)


def new_team_number() -> str:
    """``T-`` and 8 characters from the OS CSPRNG; uniqueness is checked by the database."""
    return "T-" + "".join(secrets.choice(NUMBER_ALPHABET) for _ in range(NUMBER_LENGTH))


def size(helpers: int, needed: int) -> str:
    """n/m: helpers so far (the initiator not counted) / helpers needed."""
    return f"{helpers}/{needed}"
