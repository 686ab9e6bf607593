"""Tokens are verified once and remembered, but expiry is checked on every use."""

from __future__ import annotations

import time

import pytest

from service_kit import auth
from service_kit.auth import CallerKind, decode_token, encode_token
from service_kit.errors import Unauthenticated

SECRET = "a-test-secret-that-is-long-enough-for-hs256"


def test_a_remembered_token_still_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    token = encode_token(SECRET, sub="backend", tenant_id="t1", kind="service", ttl_seconds=60)
    assert decode_token(SECRET, token).tenant_id == "t1"
    assert decode_token(SECRET, token).kind is CallerKind.service  # from the cache
    later = time.time() + 61
    monkeypatch.setattr(auth.time, "time", lambda: later)
    with pytest.raises(Unauthenticated) as expired:
        decode_token(SECRET, token)
    assert expired.value.code == "token_expired"


def test_a_token_signed_with_another_secret_is_refused_even_after_a_good_one() -> None:
    token = encode_token(SECRET, sub="backend", tenant_id="t1", kind="service")
    decode_token(SECRET, token)
    with pytest.raises(Unauthenticated) as refused:
        decode_token("another-secret-that-is-long-enough-for-hs256", token)
    assert refused.value.code == "invalid_token"
