"""Pure rules of explain: which daily run decides stored flows and when it is due, and why
a download task is not completed."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from activity_service.activities.rules import TaskType
from activity_service.evaluation.engine import UserFacts, Window, not_done_reason
from activity_service.evaluation.explain import next_run

HK = ZoneInfo("Asia/Hong_Kong")
WINDOW = Window(datetime(2026, 12, 1, tzinfo=HK), datetime(2027, 1, 1, tzinfo=HK))


def at(day: int, hour: int = 12, month: int = 12, year: int = 2026) -> datetime:
    return datetime(year, month, day, hour, tzinfo=HK)


def test_flows_of_today_wait_for_tomorrows_run_after_the_cut_off() -> None:
    due = next_run(date(2026, 12, 2), at(2), HK, "00:30", set(), WINDOW, settle=False)
    assert (due.day, due.due_at, due.reachable) == (
        date(2026, 12, 2),
        at(3, 0).replace(minute=30),
        True,
    )


def test_an_older_flow_waits_for_the_run_the_cron_owes_or_the_next() -> None:
    # at Dec 5 noon the cron owes the run of Dec 4; a flow of Dec 2 is counted by it
    owed = next_run(date(2026, 12, 2), at(5), HK, "00:30", set(), WINDOW, settle=False)
    assert owed.day == date(2026, 12, 4)
    done = next_run(
        date(2026, 12, 2), at(5), HK, "00:30", {date(2026, 12, 4)}, WINDOW, settle=False
    )
    assert (done.day, done.due_at) == (date(2026, 12, 5), at(6, 0).replace(minute=30))


def test_at_end_waits_for_the_settlement_and_not_past_the_look_back() -> None:
    settle = next_run(date(2026, 12, 31), at(10), HK, "01:00", set(), WINDOW, settle=True)
    assert (settle.day, settle.due_at) == (date(2026, 12, 31), at(1, 1, month=1, year=2027))
    late = next_run(
        date(2026, 12, 31), at(20, month=1, year=2027), HK, "01:00", set(), WINDOW, settle=True
    )
    assert late.reachable is False


def test_download_not_done_says_why() -> None:
    registered = at(2)
    seen = UserFacts("u", registered_at=registered, first_login_at=at(2, 13))
    assert not_done_reason(TaskType.download, seen, WINDOW, None) == "device_seen_before"
    never = UserFacts("u", registered_at=registered)
    assert not_done_reason(TaskType.download, never, WINDOW, None) == "task_not_completed"
    assert not_done_reason(TaskType.download, seen, WINDOW, at(20, month=11)) == "outside_window"
