"""Invite code alphabet, generation and normalisation (SPEC §2.1)."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from referral_service.invite_codes.codes import (
    ALPHABET,
    CODE_LENGTH,
    generate_code,
    looks_like_code,
    normalize_code,
)


def test_alphabet_has_no_look_alikes() -> None:
    assert not set("0O1IL") & set(ALPHABET)
    assert len(set(ALPHABET)) == len(ALPHABET) and ALPHABET == ALPHABET.upper()


def test_generated_codes_are_short_and_from_the_alphabet() -> None:
    for _ in range(1000):
        code = generate_code()
        assert 6 <= len(code) <= 8 and len(code) == CODE_LENGTH
        assert set(code) <= set(ALPHABET)
        assert looks_like_code(code)


def test_codes_are_not_sequential_or_repeated() -> None:
    codes = [generate_code() for _ in range(20_000)]
    assert len(set(codes)) == len(codes)
    # Every position uses the whole alphabet roughly evenly: no structure to derive from.
    for position in range(CODE_LENGTH):
        counts = Counter(code[position] for code in codes)
        assert set(counts) == set(ALPHABET)
        expected = len(codes) / len(ALPHABET)
        assert all(0.7 * expected < n < 1.3 * expected for n in counts.values())


def test_normalisation_forgives_case_spaces_and_dashes() -> None:
    assert normalize_code("  k7m2-xq9d ") == "K7M2XQ9D"
    assert normalize_code("k7m2 xq9d") == "K7M2XQ9D"


@given(st.text(max_size=12))
def test_only_alphabet_codes_of_six_to_eight_look_like_codes(raw: str) -> None:
    code = normalize_code(raw)
    assert looks_like_code(code) == (6 <= len(code) <= 8 and set(code) <= set(ALPHABET))


def test_look_alikes_are_rejected() -> None:
    assert not looks_like_code("ABCDEF0O")
    assert not looks_like_code("ABCDEF1I")
    assert not looks_like_code("ABCDE")
    assert not looks_like_code("ABCDEFGHJ")
    assert looks_like_code("ABCDEF")
