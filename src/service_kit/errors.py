"""Errors as ``application/problem+json`` (RFC 9457) with a stable ``code`` per error."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from service_kit.transient import UNREACHABLE, is_unreachable

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "https://activity-platform.dev/problems/"


class ProblemError(Exception):
    """A failure the caller can act on. Raised anywhere; rendered at the edge."""

    status: int = 400
    code: str = "bad_request"
    title: str = "Bad request"

    def __init__(
        self,
        detail: str,
        *,
        status: int | None = None,
        code: str | None = None,
        title: str | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
        if title is not None:
            self.title = title
        self.extra = extra

    def to_dict(self) -> dict[str, Any]:
        body = {
            "type": PROBLEM_BASE + self.code,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
        }
        body.update(self.extra)
        return body


class NotFound(ProblemError):
    status, code, title = 404, "not_found", "Not found"


class Conflict(ProblemError):
    status, code, title = 409, "conflict", "Conflict"


class Unprocessable(ProblemError):
    status, code, title = 422, "validation_error", "Invalid request"


class Unauthenticated(ProblemError):
    status, code, title = 401, "unauthenticated", "Authentication required"


class Forbidden(ProblemError):
    status, code, title = 403, "forbidden", "Permission denied"


class UpstreamUnavailable(ProblemError):
    status, code, title = 503, "upstream_unavailable", "A service this request needs is down"


class DependencyUnavailable(ProblemError):
    status, code, title = 503, "dependency_unavailable", "The database or Redis is unreachable"


# Seconds a client is asked to wait before retrying a request refused for a dependency.
DEPENDENCY_RETRY_AFTER_SECONDS = 2


def dependency_unavailable_response(exc: BaseException) -> JSONResponse:
    log.warning("dependency unavailable: %s: %s", type(exc).__name__, exc)
    return problem_response(
        DependencyUnavailable(
            "The database or Redis cannot be reached right now; retry later.",
            retry_after=DEPENDENCY_RETRY_AFTER_SECONDS,
        ),
        headers={"Retry-After": str(DEPENDENCY_RETRY_AFTER_SECONDS)},
    )


def problem_response(problem: ProblemError, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        jsonable_encoder(problem.to_dict()),
        status_code=problem.status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    return [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in exc.errors()
    ]


def internal_error_response() -> JSONResponse:
    return problem_response(
        ProblemError(
            "An unexpected error occurred; it has been logged.",
            status=500,
            code="internal_error",
            title="Internal error",
        )
    )


def is_bad_value(exc: BaseException) -> bool:
    """PostgreSQL refused a value the request carried (SQLSTATE class 22, "data
    exception": a NUL character in text, a value too long for its column, a date or number
    out of range): the caller's input, not a server fault."""
    current: BaseException | None = exc
    if isinstance(current, sqlalchemy.exc.DBAPIError):
        current = current.orig
    return str(getattr(current, "sqlstate", "") or "").startswith("22")


def _bad_value() -> ProblemError:
    # Says nothing of the value itself: it may be personal data, and it goes in no log.
    return Unprocessable(
        "A value in the request cannot be stored (a NUL character, too long, or out of range).",
        code="invalid_value",
    )


def install_error_handlers(app: FastAPI) -> None:
    async def _unavailable(_: Request, exc: Exception) -> JSONResponse:
        if is_bad_value(exc):
            return problem_response(_bad_value())
        if not is_unreachable(exc):
            # Not a connection problem (e.g. an unexpected SQL error): the generic 500 path,
            # which logs it with its traceback.
            raise exc
        return dependency_unavailable_response(exc)

    # Handled here, inside the application, rather than by the catch-all below: the response
    # is an ordinary one, so the server keeps the client's connection open.
    for error in (*UNREACHABLE, sqlalchemy.exc.DBAPIError, asyncpg.exceptions.DataError):
        app.add_exception_handler(error, _unavailable)

    @app.exception_handler(OverflowError)
    async def _overflow(_: Request, exc: OverflowError) -> JSONResponse:
        # A date that leaves the representable range once converted (e.g. to UTC).
        return problem_response(_bad_value())

    @app.exception_handler(ProblemError)
    async def _problem(_: Request, exc: ProblemError) -> JSONResponse:
        # A refusal that ends (a rate limit) says when in the standard header too.
        retry_after = exc.extra.get("retry_after")
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
        return problem_response(exc, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _validation_errors(exc)
        first = errors[0] if errors else {"loc": [], "msg": "invalid"}
        where = ".".join(str(p) for p in first["loc"])
        return problem_response(Unprocessable(f"{where}: {first['msg']}", errors=errors))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {
            404: "not_found",
            405: "method_not_allowed",
            401: "unauthenticated",
            413: "body_too_large",
        }
        problem = ProblemError(
            str(exc.detail),
            status=exc.status_code,
            code=codes.get(exc.status_code, "http_error"),
            title=str(exc.detail),
        )
        return problem_response(problem, headers=getattr(exc, "headers", None))

    # The last resort; RequestContextMiddleware normally answers unexpected errors first
    # (with the request id, without closing the connection).
    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return internal_error_response()


# Reusable OpenAPI description of problem responses, for `responses=` on routes.
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {
        "description": desc,
        "content": {
            PROBLEM_JSON: {
                "schema": {"$ref": "#/components/schemas/Problem"},
            }
        },
    }
    for status, desc in {
        401: "Missing or invalid bearer token (`unauthenticated`)",
        403: "The caller lacks the permission (`forbidden`)",
        404: "Not found in the caller's tenant (`not_found`)",
        409: "Conflicts with the current state (see `code`)",
        422: "Invalid input (`validation_error` or a specific `code`)",
    }.items()
}
