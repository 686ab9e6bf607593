"""Pure team rules (SPEC §1.8): derived status, stats, names, numbers, eligibility."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from activity_service.teams import rules
from activity_service.teams.rules import TeamStatus

START = datetime(2026, 12, 1, tzinfo=UTC)
END = datetime(2027, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("state", "now", "over"),
    [
        ("published", END - timedelta(microseconds=1), False),
        ("published", END, True),  # the end is exclusive
        ("closed", START, True),
        ("draft", START, False),
    ],
)
def test_activity_over(state: str, now: datetime, over: bool) -> None:
    assert rules.activity_over(state, END, now) is over


@pytest.mark.parametrize(
    ("stored", "over", "status"),
    [
        ("forming", False, TeamStatus.forming),
        ("forming", True, TeamStatus.failed),
        ("succeeded", False, TeamStatus.succeeded),
        ("succeeded", True, TeamStatus.succeeded),
    ],
)
def test_team_status_is_derived_from_the_activity(
    stored: str, over: bool, status: TeamStatus
) -> None:
    assert rules.team_status(stored, over) is status


def test_status_filter_maps_to_stored_status() -> None:
    assert rules.stored_status_for(TeamStatus.forming, False) == "forming"
    assert rules.stored_status_for(TeamStatus.forming, True) is None
    assert rules.stored_status_for(TeamStatus.failed, True) == "forming"
    assert rules.stored_status_for(TeamStatus.failed, False) is None
    assert rules.stored_status_for(TeamStatus.succeeded, True) == "succeeded"


def test_stats_while_running_and_after_the_end() -> None:
    counts = {"forming": 3, "succeeded": 2}
    assert rules.stats_of(counts, False) == {"forming": 3, "succeeded": 2, "failed": 0, "all": 5}
    assert rules.stats_of(counts, True) == {"forming": 0, "succeeded": 2, "failed": 3, "all": 5}
    assert rules.stats_of({}, True) == {"forming": 0, "succeeded": 0, "failed": 0, "all": 0}


@pytest.mark.parametrize(
    ("state", "now", "reason"),
    [
        ("published", START, None),
        ("published", START - timedelta(seconds=1), "activity_not_started"),
        ("published", END, "activity_not_running"),
        ("draft", START, "activity_not_running"),
        ("closed", START, "activity_not_running"),
    ],
)
def test_can_take_part(state: str, now: datetime, reason: str | None) -> None:
    assert rules.can_take_part(state, START, END, now) == reason


def test_team_name_in_each_language() -> None:
    assert rules.team_name("Ada", "en") == "Ada's team"
    assert rules.team_name("小明", "zh-Hans") == "小明的队伍"
    assert rules.team_name("小明", "zh-Hant") == "小明的隊伍"
    assert rules.team_name("Ada", "fr") == "Ada's team"


def test_team_numbers_are_readable_and_distinct() -> None:
    numbers = {rules.new_team_number() for _ in range(2000)}
    assert len(numbers) == 2000
    for number in numbers:
        assert number.startswith("T-") and len(number) == 2 + rules.NUMBER_LENGTH
        assert not set(number[2:]) & set("01OILU")


def test_size_is_helpers_over_needed() -> None:
    assert rules.size(0, 3) == "0/3"
    assert rules.size(3, 3) == "3/3"
