"""Pure rules of activity configuration: validation codes, storage ids, languages, lifecycle."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from activity_service.activities import validation
from activity_service.activities.rules import (
    ActivityStatus,
    Operation,
    allowed,
    localized,
    new_code,
    pick_language,
    status_of,
)
from activity_service.activities.schemas import (
    ACTIVITY_CREATE_ADAPTER,
    BASIC_EXAMPLE,
    NON_STANDARD_EXAMPLE,
    REFERRAL_EXAMPLE,
    TEAM_EXAMPLE,
    parse_config,
)
from activity_service.activities.service import parse_if_match
from activity_service.audit.diff import changes
from service_kit.errors import ProblemError

P = [str(uuid.UUID(int=i)) for i in range(1, 6)]


def _referral(*ranges: tuple[int, int | None]) -> Any:
    body = {
        **REFERRAL_EXAMPLE,
        "segment_id": None,
        "segment_refresh": None,
        "rules": [
            {
                "task": "register",
                "tiers": [
                    {"min_invites": lo, "max_invites": hi, "prize_id": P[0]} for lo, hi in ranges
                ],
            }
        ],
        "prize_limits": [],
    }
    return ACTIVITY_CREATE_ADAPTER.validate_python(body)


@pytest.mark.parametrize(
    ("ranges", "code"),
    [
        ([(1, 3), (4, 10), (11, None)], None),
        ([(1, None)], None),
        ([(4, 10), (1, 3)], None),  # order of entry does not matter
        ([(1, 3), (3, 10)], "tier_ranges_overlap"),
        ([(1, 3), (2, 2)], "tier_ranges_overlap"),
        ([(1, 3), (5, 10)], "tier_ranges_gap"),
        ([(3, 10)], "tier_ranges_gap"),
        ([(1, None), (4, 5)], "tier_ranges_overlap"),
        ([(1, 3), (4, 2)], "tier_range_invalid"),
        ([(0, 3)], "tier_range_invalid"),
        ([], "tiers_required"),
    ],
)
def test_tier_ranges(ranges: list[tuple[int, int | None]], code: str | None) -> None:
    body = _referral(*ranges)
    if code is None:
        validation.check(body)
    else:
        with pytest.raises(validation.ConfigError) as raised:
            validation.check(body)
        assert raised.value.code == code


@pytest.mark.parametrize(
    ("rule", "code"),
    [
        ({"task": "register"}, None),
        ({"task": "net_deposit", "threshold": "1", "currency": "USD"}, None),
        ({"task": "first_transfer", "threshold": "1", "currency": "USD"}, None),
        ({"task": "download", "threshold": "1", "currency": "USD"}, "threshold_not_applicable"),
        ({"task": "open_account", "currency": "USD"}, "threshold_not_applicable"),
        ({"task": "net_asset_reached"}, "threshold_required"),
        ({"task": "transfer_reached", "threshold": "5"}, "currency_required"),
        ({"task": "enterprise_certification", "enterprise_id": "e-1"}, None),
        ({"task": "register", "enterprise_id": "e-1"}, "enterprise_id_not_applicable"),
        ({"task": "register", "lock_up": {"amount": "1", "currency": "HKD", "days": 1}}, None),
        ({"task": "register", "lock_up": {"amount": "1", "days": 1}}, "lock_up_incomplete"),
        (
            {"task": "register", "lock_up": {"amount": "1", "currency": "HKD", "days": 0}},
            "lock_up_incomplete",
        ),
    ],
)
def test_basic_rule_fields(rule: dict[str, Any], code: str | None) -> None:
    body = ACTIVITY_CREATE_ADAPTER.validate_python(
        {**BASIC_EXAMPLE, "rules": [{"prize_id": P[0], **rule}]}
    )
    if code is None:
        validation.check(body)
    else:
        with pytest.raises(validation.ConfigError) as raised:
            validation.check(body)
        assert raised.value.code == code


@pytest.mark.parametrize(
    ("helpers", "ok"), [(1, False), (2, True), (10, True), (11, False), (0, False)]
)
def test_helpers_needed_is_2_to_10(helpers: int, ok: bool) -> None:
    body = ACTIVITY_CREATE_ADAPTER.validate_python({**TEAM_EXAMPLE, "helpers_needed": helpers})
    if ok:
        validation.check(body)
    else:
        with pytest.raises(validation.ConfigError, match="from 2 to 10"):
            validation.check(body)


def test_every_example_is_valid_and_round_trips_through_storage() -> None:
    for example in (BASIC_EXAMPLE, REFERRAL_EXAMPLE, TEAM_EXAMPLE, NON_STANDARD_EXAMPLE):
        body = ACTIVITY_CREATE_ADAPTER.validate_python(example)
        validation.check(body)
        columns, config = validation.storage_of(body, 1)
        parse_config(body.kind, config)
        again = ACTIVITY_CREATE_ADAPTER.validate_python(validation.document_of(columns, config))
        assert validation.storage_of(again, 1) == (columns, config)


def test_ids_added_by_an_edit_never_reuse_old_ones() -> None:
    body = ACTIVITY_CREATE_ADAPTER.validate_python(
        {
            **BASIC_EXAMPLE,
            "rules": [
                {"id": "r1", "task": "register", "prize_id": P[0]},
                {"task": "open_account", "prize_id": P[1]},
            ],
        }
    )
    _, created = validation.storage_of(body, 1)
    assert [r["id"] for r in created["rules"]] == ["r1", "r2"]
    _, edited = validation.storage_of(body, 4)
    assert [r["id"] for r in edited["rules"]] == ["r1", "v4r1"]


def test_prize_ids_cover_every_reference() -> None:
    body = ACTIVITY_CREATE_ADAPTER.validate_python(REFERRAL_EXAMPLE)
    assert {str(p) for p in validation.prize_ids(body)} == {
        "4c1c6a8e-0f55-4d0a-9f53-0d5d3b1f9a01",
        "4c1c6a8e-0f55-4d0a-9f53-0d5d3b1f9a02",
        "4c1c6a8e-0f55-4d0a-9f53-0d5d3b1f9a03",
        "4c1c6a8e-0f55-4d0a-9f53-0d5d3b1f9a04",
    }


@pytest.mark.parametrize(
    ("header", "language"),
    [
        (None, "en"),
        ("zh-TW", "zh-Hant"),
        ("zh-HK,en;q=0.5", "zh-Hant"),
        ("zh-Hant-HK", "zh-Hant"),
        ("zh-CN", "zh-Hans"),
        ("zh", "zh-Hans"),
        ("fr-FR,zh-Hans;q=0.8,en;q=0.9", "en"),
        ("fr, de", "en"),
        ("en-GB;q=0.1, zh-SG;q=0.2", "zh-Hans"),
        ("*", "en"),
    ],
)
def test_pick_language(header: str | None, language: str) -> None:
    assert pick_language(header) == language


def test_localized_name_falls_back() -> None:
    assert localized({"zh-Hans": "简", "en": "E"}, "zh-Hant") == "简"
    assert localized({"zh-Hant": "繁"}, "en") == "繁"
    assert localized({"en": "E"}, "zh-Hans") == "E"


def test_lifecycle_table() -> None:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    assert status_of("published", now, now) is ActivityStatus.ended
    assert status_of("published", None, now) is ActivityStatus.running
    assert allowed(ActivityStatus.draft, Operation.publish)
    assert not allowed(ActivityStatus.running, Operation.publish)
    assert allowed(ActivityStatus.running, Operation.edit)
    for status in (ActivityStatus.ended, ActivityStatus.closed):
        assert [op for op in Operation if allowed(status, op)] == [Operation.view]


def test_codes_avoid_ambiguous_characters() -> None:
    codes = {new_code("ACT-") for _ in range(500)}
    assert len(codes) == 500
    assert not any(set(c[4:]) & set("ILOU") for c in codes)


def test_if_match_parsing() -> None:
    assert parse_if_match('"3"', required=True) == 3
    assert parse_if_match('W/"12"', required=True) == 12
    assert parse_if_match(None, required=False) is None
    for bad in (None, "*", '"abc"'):
        with pytest.raises(ProblemError) as raised:
            parse_if_match(bad, required=True)
        assert raised.value.status == 428


def test_audit_diff() -> None:
    assert changes({"a": 1, "b": [1]}, {"a": 1, "b": [2], "c": None}) == {
        "b": {"before": [1], "after": [2]}
    }
    assert changes(None, {"a": 1}) == {"a": {"before": None, "after": 1}}
