"""What a log line says it belongs to: the service, the request that caused the work and,
in a worker, the job; and how the request id travels from a request into every job it
causes, and from those jobs into the jobs they cause.

The request id rides in the outbox message's payload under ``_meta`` (``META_KEY``), next
to the contract's fields, and so does the W3C ``traceparent`` when traces are exported
(``service_kit.tracing``): the job's span continues the trace of what wrote the message.
Contracts ignore unknown keys, so consumers that know nothing of it are unaffected, and a
payload without it (older messages, cron jobs) is still valid: the job then gets an id of
its own, which the jobs it causes inherit.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from service_kit import tracing

REQUEST_ID_HEADER = "X-Request-ID"
# Longer incoming ids are cut: the id is echoed in headers and written on every log line.
MAX_REQUEST_ID_LENGTH = 128
META_KEY = "_meta"

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
# Set by the request middleware and the worker's job wrapper: in-process test platforms run
# several services in one process, so the process-wide name is only the fallback.
service_var: ContextVar[str | None] = ContextVar("service", default=None)
# "job.name:job-id" while a worker runs a job.
job_var: ContextVar[str | None] = ContextVar("job", default=None)


def new_request_id() -> str:
    """128 random bits as 32 hex digits, the shape of a UUID's hex; made from the bytes
    directly, since building a ``UUID`` took five times as long, on every request."""
    return os.urandom(16).hex()


def stamp(payload: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``payload`` carrying the current request id (the payload itself may be
    stored elsewhere too, e.g. a grant's, and must not change)."""
    request_id = request_id_var.get()
    if tracing.active():
        meta: dict[str, str] = {}
        if request_id is not None:
            meta["request_id"] = request_id
        if (traceparent := tracing.traceparent()) is not None:
            meta[tracing.TRACEPARENT] = traceparent
        return {**payload, META_KEY: meta} if meta else payload
    if request_id is None:
        return payload
    return {**payload, META_KEY: {"request_id": request_id}}


def request_id_of(payload: Any) -> str | None:
    """The request id a job payload carries, if any."""
    if not isinstance(payload, dict):
        return None
    meta = payload.get(META_KEY)
    if isinstance(meta, dict):
        request_id = meta.get("request_id")
        if isinstance(request_id, str) and request_id:
            return request_id[:MAX_REQUEST_ID_LENGTH]
    return None


def traceparent_of(payload: Any) -> str | None:
    """The W3C ``traceparent`` a job payload carries, if any."""
    if not isinstance(payload, dict):
        return None
    meta = payload.get(META_KEY)
    if isinstance(meta, dict):
        traceparent = meta.get(tracing.TRACEPARENT)
        # version-trace_id-span_id-flags: 55 characters (longer only in future versions)
        if isinstance(traceparent, str) and 55 <= len(traceparent) <= 256:
            return traceparent
    return None


def traceparents_of(payloads: Iterable[Any]) -> list[str]:
    """The distinct trace contexts of a delivery's payloads, in order."""
    seen: dict[str, None] = {}
    for payload in payloads:
        traceparent = traceparent_of(payload)
        if traceparent is not None:
            seen.setdefault(traceparent)
    return list(seen)


def request_ids_of(payloads: Iterable[Any]) -> list[str]:
    """The distinct request ids of a delivery's payloads, in order."""
    seen: dict[str, None] = {}
    for payload in payloads:
        request_id = request_id_of(payload)
        if request_id is not None:
            seen.setdefault(request_id)
    return list(seen)


@contextmanager
def bound(var: ContextVar[str | None], value: str | None) -> Iterator[None]:
    """``var`` set to ``value`` inside the block (left as it was when ``value`` is None)."""
    if value is None:
        yield
        return
    token = var.set(value)
    try:
        yield
    finally:
        var.reset(token)


@contextmanager
def message_context(payload: Any) -> Iterator[None]:
    """While one message of a delivery is handled: its request id is the current one, so
    its log lines, service calls and follow-up messages carry it; when traces are exported,
    a message of another trace than the job's is handled in a span of its own trace."""
    with bound(request_id_var, request_id_of(payload)):
        if not tracing.active():
            yield
            return
        with tracing.message_span(traceparent_of(payload)):
            yield
