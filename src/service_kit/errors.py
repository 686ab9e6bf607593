"""Errors as ``application/problem+json`` (RFC 9457) with a stable ``code`` per error."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus
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
        if exc.status_code == 400:
            # The framework's own 400s are all about a body it could not parse (JSON that is
            # not UTF-8, a broken multipart form, too many form fields): invalid input, which
            # this API answers with 422 like every other invalid input.
            return problem_response(
                Unprocessable(f"The request body cannot be read: {exc.detail}", code="invalid_body")
            )
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


# What an error status means, said on each error response of the documents (a route may
# say it more precisely in its own ``responses=``, e.g. the If-Match statuses).
_DESCRIPTIONS: dict[int, str] = {
    400: "Bad request",
    401: "Missing or invalid bearer token",
    403: "The caller lacks the permission",
    404: "Not found in the caller's tenant",
    409: "Conflicts with the current state",
    412: "The If-Match ETag is stale",
    413: "The body is too large",
    415: "Unsupported media type",
    422: "Invalid input",
    428: "If-Match missing",
    429: "Too many requests from this caller; see `Retry-After`",
    502: "A system this request needs answered badly",
    503: "A service this request needs is down",
}


def status_description(status: int) -> str:
    try:
        return _DESCRIPTIONS.get(status) or HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _problem_response(status: int) -> dict[str, Any]:
    return {
        "description": status_description(status),
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


# Reusable OpenAPI description of problem responses, for `responses=` on routers; each
# operation then declares the codes it answers (``problems``), which drops the statuses it
# cannot answer.
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: _problem_response(status) for status in (401, 403, 404, 409, 422)
}


# Key under which a route's ``responses=`` carry the problem codes it answers per status
# (each with what it means, or ""); turned into an enum on ``code`` when the document is
# built (``document_problem_codes``).
PROBLEM_CODES = "x-problem-codes"

# Codes an operation may answer besides its own, by status.
COMMON_CODES: dict[int, tuple[str, ...]] = {
    401: ("unauthenticated", "invalid_token", "token_expired"),
    403: ("forbidden",),
    422: ("validation_error", "invalid_value", "invalid_body"),
    429: ("rate_limited",),
}
# Operations with an Idempotency-Key; with an If-Match (412/428 documented).
IDEMPOTENCY_CODES: dict[int, tuple[str, ...]] = {
    409: ("idempotency_key_busy",),
    422: ("idempotency_key_reused",),
}
PRECONDITION_CODES: dict[int, tuple[str, ...]] = {
    412: ("version_mismatch",),
    428: ("precondition_required",),
}
# Operations paged by a ``cursor`` query parameter (``service_kit.pagination``).
PAGINATION_CODES: dict[int, tuple[str, ...]] = {422: ("invalid_cursor",)}
# What the codes above mean, said where they are listed.
_COMMON_MEANINGS: dict[str, str] = {
    "unauthenticated": "no bearer token",
    "invalid_token": "the token cannot be verified",
    "token_expired": "the token has expired",
    "forbidden": "the caller's kind or permissions do not allow it",
    "rate_limited": "too many writes from this caller",
    "validation_error": "a field is invalid; see `errors`",
    "invalid_value": "a value cannot be stored",
    "invalid_body": "the body cannot be read",
    "idempotency_key_busy": "a request with this key is in progress",
    "idempotency_key_reused": "the key was used for another request",
    "invalid_cursor": "the cursor is not one this API returned",
}

# A status's codes: a list, or each code with what it means (said in the document).
Codes = Sequence[str] | Mapping[str, str]


def problems(codes: Mapping[int, Codes]) -> dict[int | str, dict[str, Any]]:
    """``responses=`` of a route that declares the problem codes it answers, by status:
    the document lists them as an enum on ``code`` (with the ones every operation may
    answer), so a generated client gets a union type, and the service tests check that
    every problem an operation answers is one it declares. An operation with no code of
    its own declares ``problems({})``: it answers only the common ones."""
    declared = dict(codes) or {401: ()}
    return {
        status: {**_problem_response(status), PROBLEM_CODES: _meanings(listed)}
        for status, listed in declared.items()
    }


def _meanings(listed: Codes) -> dict[str, str]:
    if isinstance(listed, Mapping):
        return dict(listed)
    return {code: "" for code in listed}


def _codes_of(operation: dict[str, Any]) -> dict[int, dict[str, str]] | None:
    responses = operation.get("responses", {})
    if not any(PROBLEM_CODES in response for response in responses.values()):
        return None
    codes: dict[int, dict[str, str]] = {}
    for status, response in responses.items():
        if str(status)[:1] in ("4", "5"):
            codes[int(status)] = dict(response.pop(PROBLEM_CODES, {}))
    parameters = {(p.get("in"), p.get("name")) for p in operation.get("parameters", [])}
    extra = [COMMON_CODES]
    if ("header", "Idempotency-Key") in parameters:
        extra.append(IDEMPOTENCY_CODES)
    if ("query", "cursor") in parameters:
        extra.append(PAGINATION_CODES)
    if "412" in responses or 412 in responses:
        extra.append(PRECONDITION_CODES)
    for table in extra:
        for status, listed in table.items():
            for code in listed:
                codes.setdefault(status, {}).setdefault(code, _COMMON_MEANINGS.get(code, ""))
    return codes


def _listing(meanings: dict[str, str]) -> str:
    return "; ".join(
        f"`{code}` ({meanings[code]})" if meanings[code] else f"`{code}`"
        for code in sorted(meanings)
    )


def document_problem_codes(schema: dict[str, Any]) -> None:
    """An operation that declares its problem codes (``problems``) gets, on each error
    response, ``code`` as an enum of exactly what it may answer at that status, and a
    description that says what the status and each code mean; a status with no code left
    is not documented for it. Other operations keep ``code`` a string."""
    problem = {"$ref": "#/components/schemas/Problem"}
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            codes = _codes_of(operation)
            if codes is None:
                continue
            responses = operation["responses"]
            documented = {int(k) for k in responses if str(k)[:1] in ("4", "5")}
            for status in sorted(set(codes) - documented - set(COMMON_CODES)):
                # e.g. the Idempotency-Key's 409 on a route that had none of its own
                responses[str(status)] = {"description": status_description(status)}
            for key in [k for k in responses if str(k)[:1] in ("4", "5")]:
                meanings = codes.get(int(key), {})
                if not meanings:
                    del responses[key]
                    continue
                response = responses[key]
                # A fresh object: responses may share one content dict.
                response["content"] = {**response.get("content", {}), PROBLEM_JSON: {}}
                response["content"][PROBLEM_JSON]["schema"] = {
                    "allOf": [
                        problem,
                        {
                            "type": "object",
                            "required": ["code"],
                            "properties": {"code": {"type": "string", "enum": sorted(meanings)}},
                        },
                    ]
                }
                # The route's own words for the status (e.g. which If-Match problem), else
                # what the status means; then each code.
                what = response.get("description") or status_description(int(key))
                response["description"] = f"{what}: {_listing(meanings)}"


def declared_problem_codes(schema: dict[str, Any], operation_id: str) -> dict[int, set[str]] | None:
    """What a built document lets ``operation_id`` answer, by status; None when the
    operation declares no codes (``code`` is then any string)."""
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            if operation.get("operationId") != operation_id:
                continue
            declared: dict[int, set[str]] = {}
            for status, response in operation.get("responses", {}).items():
                body = response.get("content", {}).get(PROBLEM_JSON, {}).get("schema", {})
                for part in body.get("allOf", ()):
                    enum = part.get("properties", {}).get("code", {}).get("enum")
                    if enum is not None:
                        declared[int(status)] = set(enum)
            return declared or None
    return None
