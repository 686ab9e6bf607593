"""The coupon's own small state machine (SPEC §3.5), free of I/O so tests can call it directly.

A coupon exists only once its reward record is Issued (the coupon adapter puts it in the
wallet in the move to Issued). From then on:

    unused ──── use (the app user, or a broker system with a service token) ──► used
       └──── validity ends ──► expired   (derived from ``expires_at`` when read, never stored)

"used" is final. Marking a coupon used is idempotent for its caller: the same caller with
the same reference asking again gets the same answer (the coupon as it was used), while any
other caller, or the same caller for another order (another reference), is told it is used.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from reward_service.wallet.schemas import CouponStatus

# Read aloud or typed at a counter: no 0/O, 1/I/L, U (the invite codes' alphabet).
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_LENGTH = 12


# Random bytes at or past this would favour the alphabet's first letters (256 = 8 × 30 + 16).
_UNBIASED_BELOW = 256 - 256 % len(CODE_ALPHABET)
# Bytes drawn at once: too few for a code about once in a million codes (then drawn again).
_DRAW = CODE_LENGTH + 8


def new_coupon_code() -> str:
    """A redemption code: 12 of 30 letters (~59 bits) from the OS CSPRNG, so one coupon's
    code says nothing about another's. Unique per tenant by constraint. The letters come
    from one draw of bytes, each byte past the last whole multiple of 30 dropped so every
    letter is as likely (a draw per letter cost a system call each)."""
    code = ""
    while len(code) < CODE_LENGTH:
        code += "".join(
            CODE_ALPHABET[b % len(CODE_ALPHABET)]
            for b in secrets.token_bytes(_DRAW)
            if b < _UNBIASED_BELOW
        )
    return code[:CODE_LENGTH]


def normalize_code(code: str) -> str:
    """Codes are matched case-insensitively and without the spaces or dashes people add."""
    return "".join(ch for ch in code.upper() if ch not in " -")


def effective_status(
    stored_status: str, expires_at: datetime | None, now: datetime
) -> CouponStatus:
    if stored_status == CouponStatus.used.value:
        return CouponStatus.used
    if expires_at is not None and expires_at <= now:
        return CouponStatus.expired
    return CouponStatus.unused


@dataclass(frozen=True)
class UseDecision:
    """``use``: mark it used now; ``replay``: it already is, by this same request; else
    ``refusal`` is the problem code to answer with."""

    use: bool = False
    replay: bool = False
    refusal: str | None = None


def decide_use(
    *,
    stored_status: str,
    valid_from: datetime | None,
    expires_at: datetime | None,
    used_by: str | None,
    used_reference: str | None,
    caller: str,
    reference: str | None,
    now: datetime,
) -> UseDecision:
    """What a request to mark the coupon used does, given what is stored."""
    status = effective_status(stored_status, expires_at, now)
    if status is CouponStatus.used:
        if used_by == caller and used_reference == reference:
            return UseDecision(replay=True)
        return UseDecision(refusal="coupon_used")
    if status is CouponStatus.expired:
        return UseDecision(refusal="coupon_expired")
    if valid_from is not None and now < valid_from:
        return UseDecision(refusal="coupon_not_yet_valid")
    return UseDecision(use=True)
