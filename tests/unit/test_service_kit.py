"""Pure pieces of the service kit: tokens, cursors, money, problems."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from service_kit.auth import CallerKind, decode_token, encode_token
from service_kit.errors import NotFound, ProblemError, Unauthenticated
from service_kit.money import Amount, Currency
from service_kit.pagination import decode_cursor, encode_cursor

ROOT = Path(__file__).resolve().parents[2]
SECRET = "unit-test-secret-of-sufficient-length-0123456789"


def test_token_round_trip_keeps_every_claim() -> None:
    token = encode_token(SECRET, sub="u1", tenant_id="t1", kind=CallerKind.user, app_id="app")
    principal = decode_token(SECRET, token)
    assert (principal.sub, principal.tenant_id, principal.kind, principal.app_id) == (
        "u1",
        "t1",
        CallerKind.user,
        "app",
    )
    op = decode_token(
        SECRET,
        encode_token(
            SECRET, sub="o", tenant_id="t1", kind="operator", permissions=["RightsSystemFull"]
        ),
    )
    assert op.permissions == frozenset({"RightsSystemFull"})
    assert op.actor == "operator:o"


@pytest.mark.parametrize(
    "claims",
    [
        {"kind": "user"},  # a user token must name its app
        {"kind": "robot"},
        {"kind": "operator", "tenant_id": ""},
    ],
)
def test_token_without_required_claims_is_refused(claims: dict[str, str]) -> None:
    import jwt

    body = {"sub": "x", "tenant_id": "t1", "exp": 9_999_999_999, **claims}
    with pytest.raises(Unauthenticated):
        decode_token(SECRET, jwt.encode(body, SECRET, algorithm="HS256"))


def test_tampered_and_expired_tokens_are_refused() -> None:
    token = encode_token(SECRET, sub="u", tenant_id="t", kind="service")
    with pytest.raises(Unauthenticated) as tampered:
        decode_token(SECRET + "x", token)
    assert tampered.value.code == "invalid_token"
    expired = encode_token(SECRET, sub="u", tenant_id="t", kind="service", ttl_seconds=-1)
    with pytest.raises(Unauthenticated) as late:
        decode_token(SECRET, expired)
    assert late.value.code == "token_expired"


def test_cursor_round_trip_and_garbage() -> None:
    at, row = datetime(2026, 11, 23, 1, 2, 3, 456789, tzinfo=UTC), uuid.uuid4()
    assert decode_cursor(encode_cursor(at, row)) == (at, row)
    for garbage in ["", "%%%", "bm90IGEgY3Vyc29y", encode_cursor(at, row)[:-3]]:
        with pytest.raises(ProblemError) as problem:
            decode_cursor(garbage)
        assert problem.value.code == "invalid_cursor"


class _Price(BaseModel):
    amount: Amount
    currency: Currency


def test_money_is_decimal_in_and_string_out() -> None:
    price = _Price.model_validate({"amount": "1000.10", "currency": "HKD"})
    assert price.amount == Decimal("1000.10")
    assert price.model_dump(mode="json") == {"amount": "1000.10", "currency": "HKD"}
    for bad in [
        {"amount": "0", "currency": "HKD"},
        {"amount": "-1", "currency": "HKD"},
        {"amount": "1.1234567", "currency": "HKD"},
        {"amount": "1", "currency": "hkd"},
        # A JSON number is refused, even a whole one: money travels as exact digits.
        {"amount": 1000.1, "currency": "HKD"},
        {"amount": 1000, "currency": "HKD"},
        {"amount": True, "currency": "HKD"},
        {"amount": "1e3", "currency": "HKD"},
    ]:
        with pytest.raises(ValidationError):
            _Price.model_validate_json(json.dumps(bad))


def test_every_request_decimal_is_a_string_in_the_documents() -> None:
    """No request field of the documents accepts a JSON number for a decimal (the one number
    left is a wait in seconds)."""
    numbers: list[str] = []

    def walk(node: object, where: str) -> None:
        if isinstance(node, dict):
            if node.get("type") == "number":
                numbers.append(where)
            for key, value in node.items():
                walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}[{i}]")

    for service in ("activity", "referral", "reward"):
        walk(json.loads((ROOT / "openapi" / f"{service}.json").read_text()), service)
    assert numbers == ["activity/components/schemas/SandboxAdvance/properties/wait_seconds"]


def test_problem_body_is_rfc9457_with_stable_code() -> None:
    body = NotFound("No prize 1.", code="prize_not_found", prize_id="1").to_dict()
    assert body == {
        "type": "https://activity-platform.dev/problems/prize_not_found",
        "title": "Not found",
        "status": 404,
        "detail": "No prize 1.",
        "code": "prize_not_found",
        "prize_id": "1",
    }


def test_if_match_names_a_version_or_is_refused() -> None:
    from service_kit.errors import ProblemError
    from service_kit.preconditions import check_version, etag, parse_if_match, required_version

    assert etag(4) == '"4"'
    assert required_version('"4"', "prize") == 4 == required_version('W/"4"', "prize")
    assert parse_if_match(" ", required=False) is None
    for bad in (None, "", "*", '"x"', '"' + "9" * 40 + '"'):
        with pytest.raises(ProblemError) as raised:
            required_version(bad, "prize")
        assert (raised.value.status, raised.value.code) == (428, "precondition_required")
    check_version(3, 3, "prize")
    with pytest.raises(ProblemError) as stale:
        check_version(3, 2, "prize")
    assert (stale.value.status, stale.value.extra) == (412, {"current_version": 3})


async def test_rate_limits_fail_open_without_redis() -> None:
    """A throttle must not take the writes down with Redis: no Redis, no limit (logged)."""
    from redis.asyncio import Redis

    from service_kit.auth import CallerKind, Principal
    from service_kit.ratelimit import FixedWindow, limit

    redis = Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    window = FixedWindow(redis, "test", "writes", 60)
    caller = Principal(sub="s", tenant_id="t", kind=CallerKind.operator)
    try:
        for _ in range(3):
            await limit(window, caller, 1, "writes")
    finally:
        await redis.aclose()


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("user_id\na\rb\n", 2),  # a bare carriage return inside a line
        ("user_id\n" + "x" * 131_073 + "\n", 2),  # a field over the csv module's limit
        ('user_id\n"never closed\n', 2),  # an unterminated quote
    ],
)
def test_unreadable_csv_is_a_422_with_its_line(text: str, line: int) -> None:
    from service_kit.csvfile import read_csv
    from service_kit.errors import ProblemError

    with pytest.raises(ProblemError) as refused:
        read_csv(text)
    assert (refused.value.status, refused.value.code) == (422, "invalid_csv")
    assert refused.value.extra["line"] == line


def test_readable_csv_keeps_quoted_separators_and_crlf() -> None:
    from service_kit.csvfile import read_csv

    assert read_csv('user_id\r\n"a,b"\r\n\r\nc\n') == [["user_id"], ["a,b"], [], ["c"]]
