"""Invite code generation: short, read-aloud friendly, not guessable.

The alphabet drops look-alikes (0/O, 1/I/L) and U (avoids accidental words); codes are
drawn from the OS's CSPRNG, so knowing one code or a user id says nothing about another.
"""

from __future__ import annotations

import secrets

ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_LENGTH = 8


def generate_code(length: int = CODE_LENGTH) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def normalize_code(raw: str) -> str:
    """What a user typed → the canonical code (case and separators forgiven)."""
    return raw.strip().upper().replace("-", "").replace(" ", "")


def looks_like_code(code: str) -> bool:
    return 6 <= len(code) <= 8 and all(c in ALPHABET for c in code)
