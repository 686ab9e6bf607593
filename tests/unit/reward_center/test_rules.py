"""Batch file parsing and per-line checks, grant keys, review rule (no I/O)."""

from __future__ import annotations

import uuid

import pytest

from reward_service.center import rules
from reward_service.center.rules import FileProblem, parse_batch

PRIZE = "6f1c2d1e-8a43-4b0e-9a53-0c8e6f3b1a27"


def codes(data: str, default: str | None = "ACT-A") -> list[str | None]:
    return [line.code for line in parse_batch(data.encode(), default)]


def test_good_lines_are_parsed_with_defaults() -> None:
    data = f"\ufeffUser_ID , prize_id,quantity,remarks\n u-1 ,{PRIZE},3, VIP \nu-2,{PRIZE},,\n\n"
    first, second = parse_batch(data.encode(), " act-a ")
    assert first.ok and first.line == 1 and first.user_id == "u-1"
    assert first.prize_id == uuid.UUID(PRIZE) and first.quantity == 3
    assert first.remarks == "VIP" and first.activity_code == "ACT-A"
    assert second.ok and second.quantity == 1 and second.remarks is None


def test_line_codes() -> None:
    data = (
        "user_id,prize_id,quantity,activity_code\n"
        f",{PRIZE},1,\n"
        "u-2,,1,\n"
        "u-3,nope,1,\n"
        f"u-4,{PRIZE},101,\n"
        f"u-5,{PRIZE},x,\n"
        f"{'u' * 129},{PRIZE},1,\n"
        f"u-7,{PRIZE},1,{'A' * 33}\n"
        f"u-8,{PRIZE},1,,extra\n"
        f"u-9,{PRIZE},1,act-b\n"
        f"u-9,{PRIZE},2,ACT-B\n"
        f"u-9,{PRIZE},1,\n"
    )
    assert codes(data) == [
        "user_id_missing",
        "prize_id_missing",
        "prize_id_invalid",
        "quantity_invalid",
        "quantity_invalid",
        "user_id_too_long",
        "activity_code_invalid",
        "too_many_cells",
        None,
        "duplicate_line",  # same user, prize and activity, whatever the quantity
        None,  # the batch-wide activity is another activity
    ]


def test_a_rejected_line_does_not_shadow_a_later_good_one() -> None:
    data = f"user_id,prize_id,quantity\nu-1,{PRIZE},0\nu-1,{PRIZE},1\n"
    assert codes(data) == ["quantity_invalid", None]


def test_first_problem_of_a_line_is_the_one_reported() -> None:
    (line,) = parse_batch(b"user_id,prize_id\n ,nope\n", "ACT-A")
    assert line.code == "user_id_missing" and not line.ok


@pytest.mark.parametrize(
    ("data", "default", "code"),
    [
        (b"", "ACT-A", "empty_file"),
        (b"   \n", "ACT-A", "empty_file"),
        (b"user_id,prize_id\n\n", "ACT-A", "empty_file"),
        (b"user,prize_id\nu,x\n", "ACT-A", "invalid_csv"),
        (b"user_id,prize_id,user_id\nu,x,y\n", "ACT-A", "invalid_csv"),
        (b"user_id,prize_id\n\xff\xfe\n", "ACT-A", "invalid_csv"),
        (b"user_id,prize_id\nu,x\n", None, "activity_code_required"),
        (b"user_id,prize_id\nu,x\n", "  ", "activity_code_required"),
    ],
)
def test_file_problems(data: bytes, default: str | None, code: str) -> None:
    with pytest.raises(FileProblem) as raised:
        parse_batch(data, default)
    assert raised.value.code == code


def test_limits() -> None:
    lines = "".join(f"u-{n},{PRIZE}\n" for n in range(rules.MAX_LINES))
    assert len(parse_batch(f"user_id,prize_id\n{lines}".encode(), "ACT-A")) == rules.MAX_LINES
    with pytest.raises(FileProblem) as raised:
        parse_batch(f"user_id,prize_id\n{lines}u-x,{PRIZE}\n".encode(), "ACT-A")
    assert raised.value.code == "too_many_lines"
    with pytest.raises(FileProblem) as raised:
        parse_batch(b"user_id,prize_id\n" + b"x" * rules.MAX_FILE_BYTES, "ACT-A")
    assert raised.value.code == "file_too_large"


def test_per_line_activity_code_needs_no_batch_default() -> None:
    (line,) = parse_batch(f"user_id,prize_id,activity_code\nu,{PRIZE},act-z\n".encode(), None)
    assert line.ok and line.activity_code == "ACT-Z"
    (missing,) = parse_batch(f"user_id,prize_id,activity_code\nu,{PRIZE},\n".encode(), None)
    assert missing.code == "activity_code_missing"


def test_grant_keys_are_deterministic_and_distinct() -> None:
    issuance = uuid.UUID(PRIZE)
    assert rules.grant_keys(issuance, 3) == [f"manual:{issuance}:{n}" for n in (1, 2, 3)]
    assert len(rules.grant_key(uuid.uuid4(), rules.MAX_QUANTITY)) <= 200


def test_review_needs_a_second_operator() -> None:
    assert not rules.may_review("operator:ops-1", "operator:ops-1")
    assert rules.may_review("operator:ops-1", "operator:ops-2")
