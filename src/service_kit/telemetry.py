"""Prometheus metrics, JSON logs and the request id carried across HTTP calls and jobs."""

from __future__ import annotations

import json
import logging
import sys
import time
import uuid
from contextvars import ContextVar

from prometheus_client import Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service_kit.errors import internal_error_response

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"
request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

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


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        service = getattr(record, "service", None)
        if service:
            entry["service"] = service
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str = "INFO", json_logs: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if json_logs:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


class RequestContextMiddleware:
    """Pure ASGI (cheaper than ``BaseHTTPMiddleware``): the request id in (``X-Request-ID``,
    else a new one) and out on every response, the logging context, and metrics.

    An error no exception handler answered becomes the 500 problem here, inside the request
    context: it carries the request id, its log line too, and the server keeps the client's
    connection open (an error escaping the application makes it close the connection).
    """

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = None
        for name, value in scope.get("headers", ()):
            if name == b"x-request-id":
                incoming = value.decode("latin-1")[:128]
                break
        request_id = incoming or uuid.uuid4().hex
        request_id_header = (b"x-request-id", request_id.encode("latin-1"))
        token = request_id_var.set(request_id)
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
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "")
            HTTP_REQUESTS.labels(self.service, method, path, str(status)).inc()
            HTTP_LATENCY.labels(self.service, method, path).observe(time.perf_counter() - started)
            request_id_var.reset(token)
