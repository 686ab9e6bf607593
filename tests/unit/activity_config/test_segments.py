"""Segment snapshot times and upload parsing (pure)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from activity_service.segments.snapshot import next_refresh_after, snapshot_at
from activity_service.segments.upload import parse_external_page, parse_member_ids
from service_kit.errors import ProblemError

HK = ZoneInfo("Asia/Hong_Kong")


def test_five_minute_snapshot_floors_to_the_boundary() -> None:
    at = datetime(2026, 11, 23, 10, 7, 59, tzinfo=UTC)
    assert snapshot_at(at, "5m") == datetime(2026, 11, 23, 10, 5, tzinfo=UTC)
    assert snapshot_at(at.replace(minute=10, second=0), "5m") == at.replace(minute=10, second=0)
    assert next_refresh_after(at, "5m") == datetime(2026, 11, 23, 10, 10, tzinfo=UTC)


def test_daily_snapshot_is_the_tenant_midnight() -> None:
    # 15:59 UTC is 23:59 in Hong Kong: the snapshot is that day's HK midnight (16:00 UTC
    # the day before); one minute later it is the next one.
    before = datetime(2026, 11, 23, 15, 59, tzinfo=UTC)
    assert snapshot_at(before, "1d") == datetime(2026, 11, 22, 16, 0, tzinfo=UTC)
    after = datetime(2026, 11, 23, 16, 0, tzinfo=UTC)
    assert snapshot_at(after, "1d") == after
    assert next_refresh_after(before, "1d") == after
    assert snapshot_at(before, "1d", ZoneInfo("UTC")) == datetime(2026, 11, 23, tzinfo=UTC)


def test_daily_snapshot_across_daylight_saving() -> None:
    ny = ZoneInfo("America/New_York")
    # 2026-03-08 is a 23-hour day in New York.
    at = datetime(2026, 3, 8, 12, 0, tzinfo=UTC)
    assert snapshot_at(at, "1d", ny) == datetime(2026, 3, 8, 5, 0, tzinfo=UTC)
    assert next_refresh_after(at, "1d", ny) == datetime(2026, 3, 9, 4, 0, tzinfo=UTC)


def test_naive_time_is_refused() -> None:
    with pytest.raises(ValueError):
        snapshot_at(datetime(2026, 1, 1), "5m")


@pytest.mark.parametrize(
    ("content_type", "body", "ids"),
    [
        ("application/json", b'["a", "b", "a", 7]', ["a", "b", "7"]),
        ("application/json; charset=utf-8", b'{"user_ids": ["x"]}', ["x"]),
        ("text/csv", b"user_id,name\r\nu1,Ann\r\nu2,Bob\r\n\r\n", ["u1", "u2"]),
        ("text/csv", "\ufeffu1\nu2\n".encode(), ["u1", "u2"]),
        ("text/plain", b"u1\n\n  u2  \nu1\n", ["u1", "u2"]),
        ("text/plain", b"", []),
    ],
)
def test_uploads_parse(content_type: str, body: bytes, ids: list[str]) -> None:
    assert parse_member_ids(content_type, body) == ids


@pytest.mark.parametrize(
    ("content_type", "body", "code"),
    [
        ("application/json", b"{", "invalid_member_upload"),
        ("application/json", b'{"ids": []}', "invalid_member_upload"),
        ("application/json", b'["ok", null]', "invalid_member_id"),
        ("text/plain", ("x" * 129).encode(), "invalid_member_id"),
        ("application/xml", b"<a/>", "unsupported_media_type"),
    ],
)
def test_bad_uploads(content_type: str, body: bytes, code: str) -> None:
    with pytest.raises(ProblemError) as raised:
        parse_member_ids(content_type, body)
    assert raised.value.code == code


def test_bad_line_is_named() -> None:
    with pytest.raises(ProblemError) as raised:
        parse_member_ids("text/plain", b"u1\nu2\n" + b"y" * 200 + b"\n")
    assert raised.value.extra["line"] == 3


def test_external_pages() -> None:
    assert parse_external_page(["a", 1]) == (["a", "1"], None)
    assert parse_external_page({"items": ["a"], "next_cursor": "c2"}) == (["a"], "c2")
    assert parse_external_page({"user_ids": [], "next_cursor": None}) == ([], None)
    with pytest.raises(ProblemError):
        parse_external_page({"next_cursor": "x"})
