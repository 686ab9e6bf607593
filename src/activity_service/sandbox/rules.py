"""When things fall due on a sandbox clock: pure, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo


def next_daily_run(after: datetime, zone: ZoneInfo, run_at: str) -> datetime:
    """The first instant strictly after ``after`` at which the tenant's daily run is due:
    ``run_at`` (HH:MM, local) on the same or the next local day, in UTC."""
    hour, minute = (int(p) for p in run_at.split(":"))
    local_day = after.astimezone(zone).date()
    for offset in range(3):  # a day, or two around a DST change that skips the run time
        at = datetime.combine(local_day + timedelta(days=offset), time(hour, minute), zone)
        if at > after:
            return at.astimezone(UTC)
    raise AssertionError("a daily run time falls within three days")


def next_step(now: datetime, target: datetime, *due: datetime | None) -> datetime:
    """Where an advance stops next: the earliest thing due after ``now``, or the target."""
    return min([target, *(d for d in due if d is not None and d > now)])
