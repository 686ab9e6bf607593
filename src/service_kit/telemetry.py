"""Prometheus metrics, JSON logs and the request id carried across HTTP calls and jobs."""

from __future__ import annotations

import logging
import time
from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service_kit.correlation import (
    MAX_REQUEST_ID_LENGTH,
    REQUEST_ID_HEADER,
    new_request_id,
    request_id_var,
    service_var,
)
from service_kit.errors import internal_error_response
from service_kit.logs import JsonFormatter, configure_logging

__all__ = [
    "REQUEST_ID_HEADER",
    "JsonFormatter",
    "RequestContextMiddleware",
    "configure_logging",
    "request_id_var",
]

log = logging.getLogger(__name__)
# One line per request: method, path (without its query, which may carry user ids), route,
# status and duration, with the request id.
access_log = logging.getLogger("access")

HTTP_REQUESTS = Counter(
    "http_requests_total", "HTTP requests", ["service", "method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "http_request_duration_seconds", "HTTP request latency", ["service", "method", "route"]
)
JOBS = Counter("jobs_total", "Jobs run", ["service", "job", "outcome"])
STATE_TRANSITIONS = Counter(
    "state_transitions_total", "Reward record state transitions", ["from_status", "to_status"]
)
OUTBOX_SENT = Counter("outbox_messages_sent_total", "Outbox messages enqueued")
OUTBOX_REDELIVERED = Counter(
    "outbox_messages_redelivered_total",
    "Sent outbox messages enqueued again because Redis no longer knew their job",
)
OUTBOX_MESSAGES = Gauge("outbox_messages", "Outbox messages owed: unsent, in flight", ["state"])
OUTBOX_DEAD = Counter(
    "outbox_messages_dead_total", "Outbox messages given up after repeated failed jobs"
)
QUEUE_JOBS = Gauge("queue_jobs_waiting", "Jobs waiting in a service's queue", ["queue"])
JOB_DURATION = Histogram(
    "job_duration_seconds",
    "Time a job took, deliveries of many messages included",
    ["service", "job"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20),
)
OUTBOX_LAG = Histogram(
    "outbox_lag_seconds",
    "Time from outbox write to enqueue",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)


class RequestContextMiddleware:
    """Pure ASGI (cheaper than ``BaseHTTPMiddleware``): the request id in (``X-Request-ID``,
    else a new one) and out on every response, the logging context, the access log line,
    and metrics.

    An error no exception handler answered becomes the 500 problem here, inside the request
    context: it carries the request id, its log line too, and the server keeps the client's
    connection open (an error escaping the application makes it close the connection).
    """

    def __init__(self, app: ASGIApp, service: str, access_log: bool = True) -> None:
        self.app = app
        self.service = service
        self.access_log = access_log
        # The labelled series of each (method, route, status), looked up once: labelling
        # takes a lock and builds the label tuple, on every request otherwise. Routes,
        # methods and statuses are few, so this stays small.
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def _observe(self, method: str, route: str, status: int, elapsed: float) -> None:
        series = self._series.get((method, route, status))
        if series is None:
            series = (
                HTTP_REQUESTS.labels(self.service, method, route, str(status)),
                HTTP_LATENCY.labels(self.service, method, route),
            )
            self._series[(method, route, status)] = series
        requests, latency = series
        requests.inc()
        latency.observe(elapsed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = None
        for name, value in scope.get("headers", ()):
            if name == b"x-request-id":
                incoming = _printable(value.decode("latin-1")[:MAX_REQUEST_ID_LENGTH])
                break
        request_id = incoming or new_request_id()
        request_id_header = (b"x-request-id", request_id.encode("latin-1"))
        token = request_id_var.set(request_id)
        service_token = service_var.set(self.service)
        status = 500
        response_started = False
        started = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                message["headers"] = [*message.get("headers", ()), request_id_header]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception as exc:
            if response_started:
                raise  # too late for a response of our own: the server closes the connection
            log.exception("unhandled error", exc_info=exc)
            await internal_error_response()(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "")
            self._observe(method, path, status, elapsed)
            if self.access_log and access_log.isEnabledFor(_access_level(path, status)):
                access_log.log(
                    _access_level(path, status),
                    "%s %s %d",
                    method,
                    scope.get("path", ""),
                    status,
                    extra={
                        "fields": {
                            "method": method,
                            "path": scope.get("path", ""),
                            "route": path,
                            "status": status,
                            "duration_ms": round(elapsed * 1000, 2),
                        }
                    },
                )
            service_var.reset(service_token)
            request_id_var.reset(token)


# Probes answered every few seconds by orchestrators: logged only at DEBUG while they pass.
_PROBES = frozenset({"/healthz", "/readyz", "/metrics"})


def _access_level(route: str, status: int) -> int:
    return logging.DEBUG if route in _PROBES and status < 400 else logging.INFO


def _printable(value: str) -> str | None:
    """An incoming request id is echoed in a header and written to logs: printable ASCII
    only, else the request gets an id of its own."""
    return value if value and value.isprintable() and value.isascii() else None
