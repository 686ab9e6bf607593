"""Which failures a job retries and which an API answers with 503."""

from __future__ import annotations

import asyncpg
import httpx
import pytest
import sqlalchemy.exc

from service_kit.transient import is_transient, is_unreachable


def _wrapped(orig: BaseException) -> sqlalchemy.exc.DBAPIError:
    return sqlalchemy.exc.DBAPIError("SELECT 1", {}, orig)


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionRefusedError(),
        asyncpg.exceptions.ConnectionDoesNotExistError("closed mid-query"),
        asyncpg.exceptions.AdminShutdownError("terminating connection"),
        _wrapped(asyncpg.exceptions.CannotConnectNowError("starting up")),
        sqlalchemy.exc.TimeoutError("QueuePool limit reached"),
    ],
)
def test_a_lost_dependency_is_unreachable_and_transient(exc: BaseException) -> None:
    assert is_unreachable(exc)
    assert is_transient(exc)


@pytest.mark.parametrize(
    "exc",
    [
        asyncpg.exceptions.DeadlockDetectedError("deadlock detected"),
        _wrapped(asyncpg.exceptions.SerializationError("could not serialize")),
        httpx.ConnectError("referral service down"),
    ],
)
def test_victims_and_failed_calls_are_retried_but_are_not_a_503(exc: BaseException) -> None:
    assert is_transient(exc)
    assert not is_unreachable(exc)


def test_a_cause_further_down_the_chain_counts() -> None:
    try:
        try:
            raise ConnectionResetError()
        except ConnectionResetError as inner:
            raise RuntimeError("job step failed") from inner
    except RuntimeError as outer:
        assert is_transient(outer)


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("bad payload"),
        KeyError("prize_id"),
        _wrapped(asyncpg.exceptions.UniqueViolationError("duplicate key")),
        FileNotFoundError("not a dependency"),
    ],
)
def test_bugs_and_bad_data_are_not_transient(exc: BaseException) -> None:
    assert not is_transient(exc)
    assert not is_unreachable(exc)
