"""The service kit at its edges, without servers: database URL schemes, which errors mean
"a dependency is down", and what the request middleware answers when a handler fails."""

from __future__ import annotations

import asyncpg
import httpx
import pytest
import redis.exceptions
import sqlalchemy.exc
from fastapi import APIRouter

from activity_service.config import ActivitySettings
from referral_service.config import ReferralSettings
from reward_service.config import RewardSettings
from service_kit.app_factory import create_service_app
from service_kit.config import ServiceSettings, normalize_database_url
from service_kit.transient import is_unreachable


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u:p@db:5432/x", "postgresql+asyncpg://u:p@db:5432/x"),
        ("postgres://u:p@db:5432/x", "postgresql+asyncpg://u:p@db:5432/x"),
        ("POSTGRES://u@db/x", "postgresql+asyncpg://u@db/x"),
        ("postgresql+asyncpg://u@db/x", "postgresql+asyncpg://u@db/x"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite:///x.db"),
    ],
)
def test_database_url_scheme_is_normalised_to_asyncpg(given: str, expected: str) -> None:
    assert normalize_database_url(given) == expected
    assert ServiceSettings(database_url=given).database_url == expected


@pytest.mark.parametrize(
    ("settings_class", "variable"),
    [
        (ActivitySettings, "ACTIVITY_DATABASE_URL"),
        (ReferralSettings, "REFERRAL_DATABASE_URL"),
        (RewardSettings, "REWARD_DATABASE_URL"),
    ],
)
def test_each_service_accepts_a_plain_postgres_url_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, settings_class: type[ServiceSettings], variable: str
) -> None:
    monkeypatch.setenv(variable, "postgres://app:secret@db.internal:6432/svc")
    settings = settings_class()
    assert settings.database_url == "postgresql+asyncpg://app:secret@db.internal:6432/svc"


def _dbapi_error(orig: BaseException, *, invalidated: bool = False) -> sqlalchemy.exc.DBAPIError:
    error = sqlalchemy.exc.DBAPIError.instance(
        "SELECT 1", None, orig, Exception, connection_invalidated=invalidated
    )
    assert isinstance(error, sqlalchemy.exc.DBAPIError)
    return error


def _caused_by(exc: BaseException, cause: BaseException) -> BaseException:
    exc.__cause__ = cause
    return exc


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionRefusedError(111, "Connection refused"),
        ConnectionResetError(),
        TimeoutError(),
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed"),
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        asyncpg.exceptions.TooManyConnectionsError("too many clients"),
        redis.exceptions.ConnectionError("Error 111 connecting"),
        redis.exceptions.TimeoutError("Timeout reading from socket"),
        sqlalchemy.exc.TimeoutError("QueuePool limit reached"),
        _dbapi_error(Exception("connection is closed"), invalidated=True),
        _caused_by(
            _dbapi_error(Exception("adapted")),
            asyncpg.exceptions.ConnectionDoesNotExistError("closed in the middle of operation"),
        ),
        sqlalchemy.exc.OperationalError("SELECT 1", None, Exception("server closed")),
    ],
    ids=lambda exc: type(exc).__name__,
)
def test_connection_level_errors_mean_a_dependency_is_unavailable(exc: BaseException) -> None:
    assert is_unreachable(exc)


@pytest.mark.parametrize(
    "exc",
    [
        RuntimeError("bug"),
        FileNotFoundError("not a dependency"),
        sqlalchemy.exc.IntegrityError("INSERT", None, Exception("duplicate key")),
        sqlalchemy.exc.ProgrammingError("SELEC", None, Exception("syntax error")),
        asyncpg.exceptions.UniqueViolationError("duplicate key"),
        redis.exceptions.ResponseError("WRONGTYPE"),
    ],
    ids=lambda exc: type(exc).__name__,
)
def test_other_errors_do_not(exc: BaseException) -> None:
    assert not is_unreachable(exc)


def _app_raising(exc: BaseException):  # type: ignore[no-untyped-def]
    router = APIRouter()

    @router.get("/boom")
    async def boom() -> None:
        raise exc

    # No lifespan is run by the transport: nothing connects anywhere.
    return create_service_app(
        title="t", description="d", settings=ServiceSettings(service_name="t"), routers=[router]
    )


async def _get(app, path: str = "/boom", **headers: str) -> httpx.Response:  # type: ignore[no-untyped-def]
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        return await client.get(path, headers=headers)


async def test_an_unexpected_error_is_a_500_problem_with_the_request_id() -> None:
    response = await _get(_app_raising(RuntimeError("bug")), **{"X-Request-ID": "req-500"})
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "internal_error"
    assert response.headers["x-request-id"] == "req-500"


async def test_a_non_connection_database_error_is_still_a_500() -> None:
    error = sqlalchemy.exc.ProgrammingError("SELEC", None, Exception("syntax error"))
    response = await _get(_app_raising(error))
    assert response.status_code == 500 and response.json()["code"] == "internal_error"
    assert response.headers["x-request-id"]


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionRefusedError(111, "Connection refused"),
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        redis.exceptions.ConnectionError("Error 111 connecting"),
        _dbapi_error(Exception("connection is closed"), invalidated=True),
    ],
    ids=lambda exc: type(exc).__name__,
)
async def test_a_connection_error_is_a_503_problem_with_retry_after(exc: BaseException) -> None:
    response = await _get(_app_raising(exc), **{"X-Request-ID": "req-503"})
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "dependency_unavailable"
    assert response.headers["retry-after"] == "2"
    assert response.headers["x-request-id"] == "req-503"


async def test_request_id_is_generated_when_none_is_sent() -> None:
    response = await _get(_app_raising(RuntimeError()), path="/healthz")
    assert response.status_code == 200
    assert len(response.headers["x-request-id"]) == 32


def test_the_reference_cash_system_accepts_a_plain_postgres_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from activity_platform.reference_cash import CashSettings

    monkeypatch.setenv("CASH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/cash")
    assert CashSettings().database_url == "postgresql+asyncpg://postgres@127.0.0.1:5432/cash"
