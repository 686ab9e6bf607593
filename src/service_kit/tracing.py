"""OpenTelemetry traces, exported over OTLP/HTTP (protobuf) when an endpoint is configured.

With ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) set, each
API and worker process installs a tracer provider named after its service
(``service.name``: activity, referral, reward) and these become spans:

- every HTTP request (FastAPI's own server spans, with its dependency, endpoint and
  serialization spans under them), continuing the caller's trace from ``traceparent``;
- every call a ``ServiceClient`` makes (``opentelemetry-instrumentation-httpx``), which
  sends ``traceparent`` on, so the called service's request joins the trace;
- every job, with the trace it belongs to carried across the queue: ``stamp`` writes the
  current W3C ``traceparent`` into each outbox message's ``_meta`` next to the request id,
  and the job's span is a child of it (a delivery of messages of several traces starts a
  trace of its own linked to each of them, and each message is then handled in a span of
  its own trace, so what it causes continues that trace);
- with ``TRACE_SQL=true`` as well, every SQL statement (``opentelemetry-instrumentation-
  asyncpg``: statement text only, never its parameters). Off by default: a span per
  statement costs more than the statement on the ingest path.

Without the variable nothing here imports OpenTelemetry's SDK or exporter, starts a thread
or wraps anything: every entry point is one look at a module global. Query strings (which
may carry user ids) never reach a span.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    import httpx
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, Tracer

TRACEPARENT = "traceparent"
# The resource attribute telling an API's spans from its worker's (same service.name).
PROCESS_ATTRIBUTE = "activity_platform.process"
REDACTED = "[redacted]"

_NULL: AbstractContextManager[None] = nullcontext()


def wanted() -> bool:
    """Whether this process should export traces: an OTLP endpoint is configured (the
    standard variables) and the SDK is not disabled (``OTEL_SDK_DISABLED``)."""
    endpoint = any(
        os.environ.get(name, "").strip()
        for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )
    disabled = os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"
    return endpoint and not disabled


def sql_wanted() -> bool:
    return os.environ.get("TRACE_SQL", "").strip().lower() in {"1", "true", "yes", "on"}


class _Tracing:
    """What a configured process holds; built only when traces are exported."""

    def __init__(self, provider: TracerProvider) -> None:
        from opentelemetry import trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self.provider = provider
        self.tracer: Tracer = provider.get_tracer("service_kit")
        self.propagator = TraceContextTextMapPropagator()
        self.trace = trace

    def traceparent(self) -> str | None:
        carrier: dict[str, str] = {}
        self.propagator.inject(carrier)
        return carrier.get(TRACEPARENT)

    def parent(self, traceparent: str) -> Any:
        """The OpenTelemetry context of a ``traceparent`` (an invalid one: no parent)."""
        return self.propagator.extract({TRACEPARENT: traceparent})

    def span_context_of(self, traceparent: str) -> Any:
        context = self.trace.get_current_span(self.parent(traceparent)).get_span_context()
        return context if context.is_valid else None

    @contextlib.contextmanager
    def job_span(
        self, name: str, ctx: dict[str, Any], traceparents: Sequence[str], messages: int
    ) -> Iterator[Span]:
        from opentelemetry.trace import Link, SpanKind

        attributes: dict[str, Any] = {
            "messaging.system": "arq",
            "messaging.operation.type": "process",
            "messaging.operation.name": name,
            "messaging.message.id": str(ctx.get("job_id", "")),
            "messaging.batch.message_count": messages,
            "arq.job.try": int(ctx.get("job_try", 1)),
        }
        parent = None
        links: list[Link] = []
        if len(traceparents) == 1:
            parent = self.parent(traceparents[0])
        else:
            # Messages of several traces: a trace of the delivery's own, linked to each.
            for traceparent in traceparents[:128]:
                if (context := self.span_context_of(traceparent)) is not None:
                    links.append(Link(context))
        with self.tracer.start_as_current_span(
            f"job {name}",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes=attributes,
            links=links,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            yield span

    def message_span(self, traceparent: str | None) -> AbstractContextManager[Any]:
        """A message of another trace than the running job's is handled in a span of its own
        trace (linked to the job's), so what it causes continues that trace."""
        if traceparent is None:
            return _NULL
        context = self.span_context_of(traceparent)
        current = self.trace.get_current_span()
        if context is None or context.trace_id == current.get_span_context().trace_id:
            return _NULL
        from opentelemetry.trace import Link, SpanKind

        links = [Link(current.get_span_context())] if current.get_span_context().is_valid else []
        return self.tracer.start_as_current_span(
            "message",
            context=self.parent(traceparent),
            kind=SpanKind.CONSUMER,
            links=links,
            record_exception=False,
            set_status_on_exception=False,
        )


_state: _Tracing | None = None


def active() -> bool:
    return _state is not None


def configure(service: str, process: str) -> bool:
    """Install this process's tracer provider if traces are wanted (once per process: the
    first service configured names it). Returns whether traces are exported."""
    global _state
    if _state is not None:
        return True
    if not wanted():
        return False
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # OTEL_RESOURCE_ATTRIBUTES adds to the resource; the service's name is always its own
    # (one environment often starts all six processes). OTEL_TRACES_SAMPLER, OTEL_BSP_* and
    # the OTLP exporter's own variables (headers, timeout, compression) apply as usual.
    resource = Resource.create().merge(
        Resource(
            {
                "service.name": service,
                "service.namespace": "activity-platform",
                PROCESS_ATTRIBUTE: process,
            }
        )
    )
    provider = TracerProvider(resource=resource)
    # The client and SQL spans name their attributes as FastAPI's server spans do (the
    # stable HTTP and database conventions) unless the operator chose otherwise.
    os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http,database")
    provider.add_span_processor(_query_scrubber())
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    if trace.get_tracer_provider() is not provider:  # another library set one first
        provider.shutdown()
        return False
    if sql_wanted():
        from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

        AsyncPGInstrumentor().instrument(tracer_provider=provider)
    _state = _Tracing(provider)
    return True


def shutdown() -> None:
    """Export what is buffered (also done at exit by the provider itself)."""
    if _state is not None:
        _state.provider.force_flush()


def traceparent() -> str | None:
    """The W3C ``traceparent`` of the current span, to carry in a message's ``_meta``."""
    return _state.traceparent() if _state is not None else None


def trace_id() -> str | None:
    """The current trace id in hex, for log lines."""
    if _state is None:
        return None
    context = _state.trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


def job_span(
    name: str, ctx: dict[str, Any], traceparents: Sequence[str], messages: int
) -> AbstractContextManager[Span | None]:
    if _state is None:
        return _NULL
    return _state.job_span(name, ctx, traceparents, messages)


def message_span(traceparent: str | None) -> AbstractContextManager[Any]:
    if _state is None:
        return _NULL
    return _state.message_span(traceparent)


def end_job(span: Span | None, outcome: str, error: BaseException | None) -> None:
    """A job span's outcome: ok, retry (not an error: it runs again) or error."""
    if span is None:
        return
    from opentelemetry.trace import StatusCode

    span.set_attribute("arq.job.outcome", outcome)
    if outcome == "error":
        if error is not None:
            span.set_attribute("error.type", type(error).__qualname__)
        span.set_status(StatusCode.ERROR)


def instrument_client(client: httpx.AsyncClient) -> None:
    """Spans for a client's calls, with ``traceparent`` sent on (no-op without tracing)."""
    if _state is None:
        return
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    HTTPXClientInstrumentor.instrument_client(client, tracer_provider=_state.provider)


def _without_query(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        return REDACTED
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")) if parts.query else url


def _query_scrubber() -> Any:
    """A span processor that drops query strings (they may carry user ids, as the access
    log's paths do not) from server and client spans as they start."""
    from opentelemetry.sdk.trace import SpanProcessor

    class QueryScrubber(SpanProcessor):
        def on_start(self, span: Any, parent_context: Any = None) -> None:
            attributes = span.attributes or {}
            if "url.query" in attributes:
                span.set_attribute("url.query", REDACTED)
            for key in ("url.full", "http.url"):
                value = attributes.get(key)
                if isinstance(value, str) and "?" in value:
                    span.set_attribute(key, _without_query(value))

    return QueryScrubber()
