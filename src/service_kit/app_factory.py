"""Builds a service's FastAPI application with the shared middleware, errors and probes."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import APIRouter, FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from fastapi.telemetry import TelemetryConfig
from sqlalchemy import text
from sqlalchemy.engine import make_url
from starlette.types import ASGIApp

from service_kit import health, tracing
from service_kit.auth import TokenVerifier
from service_kit.clock import Clock, SystemClock
from service_kit.config import ServiceSettings
from service_kit.db import Database
from service_kit.direct_dispatch import DirectDispatch, directly_answered
from service_kit.errors import PROBLEM_JSON, document_problem_codes, install_error_handlers
from service_kit.http import ServiceClient
from service_kit.idempotency import IdempotencyKeyMixin, install_replay_handler
from service_kit.outbox import OutboxNotifier
from service_kit.queue import parse_sentinel_url, redis_client
from service_kit.ratelimit import RateLimits
from service_kit.routing import ServiceRoute
from service_kit.sandbox import TenantClocks
from service_kit.telemetry import RequestContextMiddleware

log = logging.getLogger(__name__)

PROBLEM_SCHEMA = {
    "title": "Problem",
    "type": "object",
    "description": "RFC 9457 problem details; `code` is stable and machine-readable.",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string", "example": "https://activity-platform.dev/problems/not_found"},
        "title": {"type": "string", "example": "Not found"},
        "status": {"type": "integer", "example": 404},
        "detail": {"type": "string", "example": "No activity 3f2c… in this tenant."},
        "code": {"type": "string", "example": "not_found"},
        "errors": {
            "type": "array",
            "description": "Field errors of a `validation_error`.",
            "items": {
                "type": "object",
                "required": ["loc", "msg", "type"],
                "properties": {
                    "loc": {
                        "type": "array",
                        "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                        "description": "Where: `body`, `query`, `path` or `header`, then names",
                    },
                    "msg": {"type": "string"},
                    "type": {"type": "string", "description": "Machine-readable kind"},
                },
            },
        },
    },
}


def _safe_url(url: str) -> str:
    try:
        sentinel = parse_sentinel_url(url)
        if sentinel is not None:
            hosts = ",".join(f"{host}:{port}" for host, port in sentinel.hosts)
            return f"redis+sentinel://{hosts}/{sentinel.master}/{sentinel.database}"
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - only for a log line
        return "<unparsable URL>"


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


async def check_dependencies(app: FastAPI) -> bool:
    """At startup, one clear line per unreachable dependency instead of a traceback. The
    service starts anyway: requests needing it answer 503 and ``/readyz`` says 503 until it
    is back, so the order in which servers come up does not matter."""
    ok = True
    settings: ServiceSettings = app.state.settings
    try:
        async with app.state.db.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - reported, never raised
        ok = False
        log.error(
            "%s: database %s unreachable at startup (%s); answering 503 until it is back",
            settings.service_name,
            _safe_url(settings.database_url),
            _reason(exc),
        )
    try:
        await app.state.redis.ping()
    except Exception as exc:  # noqa: BLE001
        ok = False
        log.error(
            "%s: Redis %s unreachable at startup (%s); answering 503 until it is back",
            settings.service_name,
            _safe_url(settings.redis_url),
            _reason(exc),
        )
    return ok


def _telemetry() -> TelemetryConfig:
    """FastAPI's own OpenTelemetry server spans (with its dependency, endpoint and
    serialization spans) only where traces are exported (``service_kit.tracing``): with no
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` they would cost every request a look at the global
    providers (a tenth of the ingest path's CPU) and produce nothing. Metrics stay
    Prometheus' and logs the JSON lines."""
    exported = tracing.wanted()
    return {"tracing": exported, "metrics": False, "logs": False, "exclude": _probe}


# Asked every few seconds by orchestrators and Prometheus: not worth a trace each.
_PROBE_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def _probe(scope: MutableMapping[str, Any]) -> bool:
    return scope.get("path") in _PROBE_PATHS


def problem_on_every_error(schema: dict[str, Any]) -> None:
    """Every 4xx/5xx answer is a Problem: a response a route documented by description only
    gets the Problem body too, so generated clients type every error the same way."""
    content = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            for status, response in operation.get("responses", {}).items():
                if str(status)[:1] in ("4", "5") and not response.get("content"):
                    response["content"] = content


def operation_id(route: APIRoute) -> str:
    """Stable operationIds: the endpoint function's name (unique per service)."""
    return route.name


class ServiceApp(FastAPI):
    """FastAPI with its ``answered_directly`` routes dispatched past the router
    (``service_kit.direct_dispatch``)."""

    direct_routes: Sequence[ServiceRoute] = ()

    def build_middleware_stack(self) -> ASGIApp:
        return DirectDispatch(self, super().build_middleware_stack(), self.direct_routes)


def create_service_app(
    *,
    title: str,
    description: str,
    settings: ServiceSettings,
    routers: Sequence[APIRouter],
    idempotency_model: type[IdempotencyKeyMixin] | None = None,
    clock: Clock | None = None,
    http_mounts: dict[str, httpx.AsyncBaseTransport] | None = None,
    on_startup: Callable[[FastAPI], Awaitable[None]] | None = None,
    on_shutdown: Callable[[FastAPI], Awaitable[None]] | None = None,
    sandbox_model: type[Any] | None = None,
) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Before the service client is made: it is then instrumented.
        tracing.configure(settings.service_name, "api")
        app.state.db = Database(
            settings.database_url,
            pool_size=settings.db_pool_size,
            connect_timeout=settings.db_connect_timeout_seconds,
        )
        # Messages committed by requests wake the worker's relay (LISTEN outbox).
        app.state.outbox_notifier = OutboxNotifier(app.state.db)
        app.state.db.on_outbox_commit = app.state.outbox_notifier.poke
        app.state.redis = redis_client(
            settings.redis_url, socket_connect_timeout=2, socket_timeout=5
        )
        app.state.rate_limits = RateLimits(app.state.redis, settings)
        app.state.http = ServiceClient(settings, mounts=http_mounts)
        app.state.clocks = TenantClocks(
            app.state.clock, app.state.db, sandbox_model, settings.sandbox_enabled
        )
        await check_dependencies(app)
        if on_startup is not None:
            await on_startup(app)
        try:
            yield
        finally:
            if on_shutdown is not None:
                await on_shutdown(app)
            await app.state.http.aclose()
            await app.state.redis.aclose()
            await app.state.outbox_notifier.close()
            await app.state.db.dispose()

    app = ServiceApp(
        title=title,
        description=description,
        version="1.0.0",
        lifespan=lifespan,
        generate_unique_id_function=operation_id,
        telemetry=_telemetry(),
        max_body_size=settings.max_body_bytes,
    )
    app.state.settings = settings
    app.state.tokens = TokenVerifier(settings)
    app.state.clock = clock or SystemClock()
    app.state.idempotency_model = idempotency_model
    install_error_handlers(app)
    install_replay_handler(app)
    app.add_middleware(
        RequestContextMiddleware, service=settings.service_name, access_log=settings.access_log
    )
    app.include_router(health.router)
    for router in routers:
        app.include_router(router)
    # Included without a prefix: a route's path is the one requests carry.
    app.direct_routes = directly_answered(route for router in routers for route in router.routes)

    def custom_openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
            # Relative: the host that served the document (each service has its own).
            servers=[{"url": "/", "description": "This service"}],
        )
        schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
        problem_on_every_error(schema)
        document_problem_codes(schema)
        app.openapi_schema = schema
        return schema

    app.openapi = custom_openapi  # type: ignore[method-assign]
    return app
