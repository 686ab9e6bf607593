"""The coupon's state machine: who may mark it used, and what a repeat is answered."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from reward_service.wallet import rules
from reward_service.wallet.rules import (
    CODE_ALPHABET,
    CODE_LENGTH,
    decide_use,
    effective_status,
    new_coupon_code,
    normalize_code,
)
from reward_service.wallet.schemas import CouponStatus

NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def decide(**overrides: object) -> object:
    args: dict[str, object] = {
        "stored_status": "unused",
        "valid_from": None,
        "expires_at": NOW + timedelta(days=1),
        "used_by": None,
        "used_reference": None,
        "caller": "service:pos",
        "reference": "ORDER-1",
        "now": NOW,
        **overrides,
    }
    return decide_use(**args)  # type: ignore[arg-type]


def test_an_unused_coupon_in_its_validity_is_used() -> None:
    assert decide().use  # type: ignore[attr-defined]


def test_the_same_caller_and_reference_again_is_a_replay() -> None:
    again = decide(stored_status="used", used_by="service:pos", used_reference="ORDER-1")
    assert again.replay and not again.use and again.refusal is None  # type: ignore[attr-defined]
    # Even after the validity has ended: the answer to the first call does not change.
    late = decide(
        stored_status="used",
        used_by="service:pos",
        used_reference="ORDER-1",
        now=NOW + timedelta(days=5),
    )
    assert late.replay  # type: ignore[attr-defined]


def test_another_caller_or_reference_is_told_it_is_used() -> None:
    for used_by, ref in (("service:other", "ORDER-1"), ("service:pos", "ORDER-2")):
        refused = decide(stored_status="used", used_by=used_by, used_reference=ref)
        assert refused.refusal == "coupon_used"  # type: ignore[attr-defined]


def test_past_or_before_validity_is_refused() -> None:
    assert decide(expires_at=NOW).refusal == "coupon_expired"  # type: ignore[attr-defined]
    early = decide(valid_from=NOW + timedelta(hours=1))
    assert early.refusal == "coupon_not_yet_valid"  # type: ignore[attr-defined]


def test_expired_is_derived_and_used_is_final() -> None:
    assert effective_status("unused", NOW, NOW) is CouponStatus.expired
    assert effective_status("unused", None, NOW) is CouponStatus.unused
    assert effective_status("used", NOW - timedelta(days=1), NOW) is CouponStatus.used


def test_codes_are_readable_and_matched_loosely() -> None:
    codes = {new_coupon_code() for _ in range(500)}
    assert len(codes) == 500
    assert all(len(c) == CODE_LENGTH and set(c) <= set(CODE_ALPHABET) for c in codes)
    assert normalize_code(" 7kq2-m9xd hr4p ") == "7KQ2M9XDHR4P"


def test_phone_numbers_compare_by_their_digits() -> None:
    from reward_service.profiles.rules import normalize_phone

    same = ["+852 9123 4567", "(852) 9123-4567", "00852 91234567", "85291234567"]
    assert {normalize_phone(p) for p in same} == {"85291234567"}
    assert normalize_phone("+1 23") is None
    assert normalize_phone("phone") is None


def test_code_letters_drop_the_bytes_that_would_favour_some(monkeypatch: Any) -> None:
    """Bytes 240..255 (past 8 × 30) are dropped, so each letter is as likely; a draw with
    too few bytes left is followed by another."""
    draws = iter([bytes([255, 240, 0, 29, 30, 239] * 2), bytes(range(20))])
    monkeypatch.setattr(rules.secrets, "token_bytes", lambda n: next(draws))
    code = new_coupon_code()
    first = "".join(CODE_ALPHABET[b % 30] for b in [0, 29, 30, 239] * 2)
    assert code == first + "".join(CODE_ALPHABET[b] for b in range(4))
    # Over all 240 kept byte values, each letter comes from exactly eight.
    assert rules._UNBIASED_BELOW == 240
