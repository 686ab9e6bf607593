"""Which membership snapshot eligibility reads (SPEC §1.9), as pure time arithmetic.

A segment is "refreshed" every 5 minutes or once a day; eligibility must see the membership
as of the latest refresh, not the live set. So:

- ``5m``: the snapshot is ``now`` floored to the 5-minute boundary (UTC epoch; every real
  time zone offset is a multiple of 5 minutes, so the boundary is the same in local time).
  A user added at 10:02 counts from 10:05.
- ``1d``: the snapshot is the latest midnight of the tenant's time zone at or before
  ``now``. A user added at 15:00 counts from the next midnight.

``DEFAULT_TIME_ZONE`` applies when the tenant has configured none.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from activity_service.activities.rules import SegmentRefresh

DEFAULT_TIME_ZONE = "Asia/Hong_Kong"
FIVE_MINUTES = 300


def snapshot_at(
    now: datetime, refresh: SegmentRefresh | str, tz: ZoneInfo | None = None
) -> datetime:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    refresh = SegmentRefresh(refresh)
    if refresh is SegmentRefresh.five_minutes:
        seconds = int(now.timestamp())
        return datetime.fromtimestamp(seconds - seconds % FIVE_MINUTES, UTC)
    zone = tz or ZoneInfo(DEFAULT_TIME_ZONE)
    local = now.astimezone(zone)
    midnight = datetime(local.year, local.month, local.day, tzinfo=zone)
    return midnight.astimezone(UTC)


def next_refresh_after(
    now: datetime, refresh: SegmentRefresh | str, tz: ZoneInfo | None = None
) -> datetime:
    """When a change made at ``now`` becomes visible."""
    refresh = SegmentRefresh(refresh)
    current = snapshot_at(now, refresh, tz)
    if current == now:
        return now
    if refresh is SegmentRefresh.five_minutes:
        return current + timedelta(seconds=FIVE_MINUTES)
    zone = tz or ZoneInfo(DEFAULT_TIME_ZONE)
    local = current.astimezone(zone) + timedelta(days=1, hours=2)
    return datetime(local.year, local.month, local.day, tzinfo=zone).astimezone(UTC)
