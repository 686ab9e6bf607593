"""When things fall due on a sandbox clock."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from activity_service.evaluation.engine import run_day
from activity_service.sandbox.rules import next_daily_run, next_step

HK = ZoneInfo("Asia/Hong_Kong")
NY = ZoneInfo("America/New_York")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def test_the_next_daily_run_is_today_or_tomorrow_at_the_local_run_time() -> None:
    assert next_daily_run(utc("2026-12-01T00:00:00+08:00"), HK, "00:30") == utc(
        "2026-12-01T00:30:00+08:00"
    )
    # strictly after: at the run time itself the next one is a day later
    assert next_daily_run(utc("2026-12-01T00:30:00+08:00"), HK, "00:30") == utc(
        "2026-12-02T00:30:00+08:00"
    )
    assert next_daily_run(utc("2026-12-01T23:59:00+08:00"), HK, "00:30") == utc(
        "2026-12-02T00:30:00+08:00"
    )


def test_each_step_at_a_run_time_runs_the_day_before() -> None:
    at = utc("2026-12-01T09:00:00+08:00")
    days = []
    for _ in range(4):
        at = next_daily_run(at, HK, "00:30")
        days.append(run_day(at, HK, "00:30").isoformat())
    assert days == ["2026-12-01", "2026-12-02", "2026-12-03", "2026-12-04"]


def test_run_times_across_a_dst_change_keep_their_local_time() -> None:
    # New York falls back on 2026-11-01: the local 00:30 stays 00:30.
    first = next_daily_run(utc("2026-10-31T12:00:00-04:00"), NY, "00:30")
    second = next_daily_run(first, NY, "00:30")
    assert first.astimezone(NY).strftime("%H:%M") == "00:30"
    assert second.astimezone(NY).strftime("%H:%M") == "00:30"
    assert (second - first).total_seconds() == 25 * 3600


def test_an_advance_stops_at_the_earliest_thing_due_or_its_target() -> None:
    now, target = utc("2026-12-01T00:00:00Z"), utc("2026-12-10T00:00:00Z")
    run, lock = utc("2026-12-02T00:00:00Z"), utc("2026-12-01T12:00:00Z")
    assert next_step(now, target, run, lock) == lock
    assert next_step(now, target, run, None) == run
    assert next_step(now, target, utc("2026-12-11T00:00:00Z")) == target
    # something due at or before now is not a step forward
    assert next_step(now, target, now, utc("2026-11-30T00:00:00Z")) == target
