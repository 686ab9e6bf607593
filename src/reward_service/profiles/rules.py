"""How a phone number is compared (pure, unit-tested)."""

from __future__ import annotations

MIN_PHONE_DIGITS = 5


def normalize_phone(phone: str) -> str | None:
    """The digits of a phone number, the international prefix ``+`` or ``00`` dropped, so
    "+852 9123 4567", "(852) 9123-4567" and "00852 91234567" are one number. None when it
    holds too few digits to be one."""
    digits = "".join(ch for ch in phone if ch.isdigit())
    if phone.strip().startswith("00") and digits.startswith("00"):
        digits = digits[2:]
    if len(digits) < MIN_PHONE_DIGITS:
        return None
    return digits
