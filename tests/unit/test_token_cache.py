"""Tokens are verified once and remembered, but expiry is checked on every use; the outbox
notifier sends one NOTIFY for many commits."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from service_kit import auth
from service_kit.auth import CallerKind, decode_token, encode_token
from service_kit.errors import Unauthenticated
from service_kit.outbox import OutboxNotifier

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


class _Conn:
    def __init__(self, sent: list[str]) -> None:
        self.sent = sent

    async def __aenter__(self) -> _Conn:
        return self

    async def __aexit__(self, *_: Any) -> None:
        return None

    async def execute(self, statement: Any) -> None:
        self.sent.append(str(statement))

    async def commit(self) -> None:
        return None


class _Engine:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def connect(self) -> _Conn:
        return _Conn(self.sent)


class _Db:
    def __init__(self) -> None:
        self.engine = _Engine()


async def test_many_commits_make_one_notify() -> None:
    db = _Db()
    notifier = OutboxNotifier(db, delay=0.01)  # type: ignore[arg-type]
    for _ in range(100):
        notifier.poke()
    await asyncio.sleep(0.05)
    assert db.engine.sent == ["NOTIFY outbox"]
    notifier.poke()  # a later commit is told again
    await asyncio.sleep(0.05)
    assert db.engine.sent == ["NOTIFY outbox", "NOTIFY outbox"]
