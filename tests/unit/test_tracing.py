"""Traces: off (nothing imported, nothing started) without an OTLP endpoint; with one, a
job's span continues the trace its message carries in ``_meta``.

The tracer provider is per process, once: whatever configures it runs in a child process,
so the rest of the suite keeps running untraced."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from typing import Any

import pytest

from service_kit import tracing
from service_kit.correlation import stamp, traceparent_of, traceparents_of
from service_kit.tracing import _without_query
from tests.otlp import otlp_receiver

TRACE_A = "0af7651916cd43dd8448eb211c80319c"
TRACE_B = "4bf92f3577b34da6a3ce929d0e0e4736"


def _run(script: str, env: dict[str, str]) -> dict[str, Any]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    clean.pop("TRACE_SQL", None)
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


UNTRACED = """
    import asyncio, json, sys, threading
    from service_kit import tracing
    from service_kit.correlation import request_id_var, stamp
    from service_kit.worker import job
    from activity_platform.services import SERVICES

    app = SERVICES["activity"].create_app()
    configured = tracing.configure("activity", "api")
    request_id_var.set("req-1")
    stamped = stamp({"n": 1})

    @job("test.plain", "activity")
    async def plain(ctx, payload):
        return stamp({"m": 2})

    result = asyncio.run(plain.coroutine({"job_id": "j"}, stamped))
    loaded = sorted(
        m for m in sys.modules
        if m.startswith(("opentelemetry.sdk", "opentelemetry.exporter",
                         "opentelemetry.instrumentation", "google.protobuf"))
    )
    print(json.dumps({
        "configured": configured, "stamped": stamped, "result": result, "loaded": loaded,
        "threads": threading.active_count(), "fastapi_tracing": app._telemetry["tracing"],
    }))
"""


def test_without_an_endpoint_nothing_is_imported_or_started() -> None:
    out = _run(UNTRACED, {})
    assert out["configured"] is False
    assert out["fastapi_tracing"] is False
    # Messages carry the request id alone, exactly as before traces existed.
    assert out["stamped"] == {"n": 1, "_meta": {"request_id": "req-1"}}
    assert out["result"] == {"m": 2, "_meta": {"request_id": "req-1"}}
    assert out["loaded"] == []
    assert out["threads"] == 1


def test_a_disabled_sdk_exports_nothing_even_with_an_endpoint() -> None:
    out = _run(
        UNTRACED,
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "OTEL_SDK_DISABLED": "true"},
    )
    assert out["configured"] is False and out["loaded"] == []


def test_which_settings_ask_for_traces(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
    assert not tracing.wanted()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "  ")
    assert not tracing.wanted()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://collector:4318/v1/traces")
    assert tracing.wanted()
    monkeypatch.setenv("OTEL_SDK_DISABLED", "TRUE")
    assert not tracing.wanted()
    monkeypatch.setenv("TRACE_SQL", "yes")
    assert tracing.sql_wanted()
    monkeypatch.setenv("TRACE_SQL", "false")
    assert not tracing.sql_wanted()
    # Untraced here: the helpers are no-ops.
    assert not tracing.active() and tracing.traceparent() is None and tracing.trace_id() is None
    assert stamp({"a": 1}) == {"a": 1}


def test_a_message_trace_context_is_read_defensively() -> None:
    good = f"00-{TRACE_A}-00f067aa0ba902b7-01"
    assert traceparent_of({"_meta": {"traceparent": good}}) == good
    assert traceparent_of({"_meta": {"traceparent": "00-short"}}) is None
    assert traceparent_of({"_meta": {"traceparent": 7}}) is None
    assert traceparent_of({"_meta": {"traceparent": "x" * 300}}) is None
    assert traceparent_of({"_meta": "nope"}) is None
    assert traceparent_of(["not", "a", "dict"]) is None
    other = f"00-{TRACE_B}-00f067aa0ba902b7-01"
    payloads = [{"_meta": {"traceparent": good}}, {}, {"_meta": {"traceparent": other}}]
    assert traceparents_of([*payloads, payloads[0]]) == [good, other]


def test_query_strings_are_cut_from_urls() -> None:
    assert _without_query("http://r:8003/v1/x?user_id=bob") == "http://r:8003/v1/x"
    assert _without_query("http://r:8003/v1/x") == "http://r:8003/v1/x"
    assert _without_query("http://[::1/x?y=1") == "[redacted]"


TRACED = f"""
    import asyncio, io, json, logging
    from arq import Retry
    from opentelemetry import trace
    from service_kit import tracing
    from service_kit.correlation import message_context, stamp
    from service_kit.logs import log_handler
    from service_kit.worker import job

    assert tracing.configure("activity", "worker")
    assert not tracing.configure("other", "api") or True  # once per process: a no-op
    tracer = trace.get_tracer("test")
    lines = io.StringIO()
    logging.getLogger().addHandler(log_handler("activity", stream=lines))
    logging.getLogger().setLevel(logging.INFO)

    # Two requests, in two traces, each writing a message; one message without any context
    # and one with a garbled one.
    written = []
    for n in range(2):
        with tracer.start_as_current_span(f"request {{n}}"):
            written.append(stamp({{"n": n}}))
    written.append({{"n": 2}})
    garbled = "00-" + "z" * 32 + "-" + "y" * 16 + "-01"
    written.append({{"n": 3, "_meta": {{"traceparent": garbled}}}})
    seen = {{}}

    @job("test.deliver", "activity")
    async def deliver(ctx, items):
        items = items if isinstance(items, list) else [items]
        for payload in items:
            with message_context(payload):
                follow_up = stamp({{}})
                seen[str(payload["n"]) + ":" + ctx["job_id"]] = follow_up["_meta"]["traceparent"]
                logging.getLogger("test").info("handled %s", payload["n"])

    @job("test.flaky", "activity")
    async def flaky(ctx, payload):
        raise Retry(defer=1)

    @job("test.broken", "activity")
    async def broken(ctx, payload):
        raise ValueError("bad message")

    async def main():
        await deliver.coroutine({{"job_id": "mixed", "job_try": 1}}, written)
        await deliver.coroutine({{"job_id": "lone", "job_try": 1}}, written[0])
        await deliver.coroutine({{"job_id": "remote", "job_try": 1}}, {{
            "n": 9, "_meta": {{"traceparent": "00-{TRACE_A}-00f067aa0ba902b7-01"}}}})
        try:
            await flaky.coroutine({{"job_id": "flaky", "job_try": 2}}, written[1])
        except Retry:
            pass
        try:
            await broken.coroutine({{"job_id": "broken", "job_try": 1}}, written[1])
        except ValueError:
            pass

    asyncio.run(main())
    tracing.shutdown()
    log_lines = [json.loads(line) for line in lines.getvalue().splitlines()]
    print(json.dumps({{"written": written, "seen": seen, "logs": log_lines}}))
"""


def test_a_job_continues_the_trace_of_its_message() -> None:
    with otlp_receiver() as receiver:
        out = _run(
            TRACED,
            {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_BSP_SCHEDULE_DELAY": "50"},
        )
        spans = receiver.wait_for(lambda s: len([x for x in s if x.name.startswith("job")]) >= 5)
    by_name: dict[str, list[Any]] = {}
    for span in spans:
        by_name.setdefault(span.name, []).append(span)
    requests = {s.name: s for s in spans if s.name.startswith("request")}
    assert {s.service for s in spans} == {"activity"}
    assert {s.process for s in spans} == {"worker"}
    written = out["written"]
    # A request's message carries its trace context next to nothing else it did not have.
    for n in range(2):
        parts = written[n]["_meta"]["traceparent"].split("-")
        assert parts[1] == requests[f"request {n}"].trace_id
        assert parts[2] == requests[f"request {n}"].span_id
        assert "request_id" not in written[n]["_meta"]  # no request id in this process

    jobs = {s.attributes["messaging.message.id"]: s for s in by_name["job test.deliver"]}
    # A lone message: the job is a child of the span that wrote it.
    lone = jobs["lone"]
    assert lone.trace_id == requests["request 0"].trace_id
    assert lone.parent_span_id == requests["request 0"].span_id
    assert lone.kind == "consumer" and lone.attributes["arq.job.outcome"] == "ok"
    assert out["seen"]["0:lone"].split("-")[1:3] == [lone.trace_id, lone.span_id]
    # A caller's trace from another process is continued the same way.
    remote = jobs["remote"]
    assert (remote.trace_id, remote.parent_span_id) == (TRACE_A, "00f067aa0ba902b7")
    # Messages of two traces: the delivery is a trace of its own linked to both, and each
    # message is handled in a span of its own trace, so its follow-ups continue that trace.
    mixed = jobs["mixed"]
    assert mixed.parent_span_id == ""
    assert mixed.trace_id not in {r.trace_id for r in requests.values()}
    assert set(mixed.links) == {(r.trace_id, r.span_id) for r in requests.values()}
    assert mixed.attributes["messaging.batch.message_count"] == 4
    messages = {s.trace_id: s for s in by_name["message"]}
    assert len(messages) == 2
    for n in range(2):
        request = requests[f"request {n}"]
        message = messages[request.trace_id]
        assert message.parent_span_id == request.span_id
        assert message.links == ((mixed.trace_id, mixed.span_id),)
        assert out["seen"][f"{n}:mixed"].split("-")[1:3] == [request.trace_id, message.span_id]
    # Without a (valid) context a message stays in the delivery's trace.
    for n in (2, 3):
        assert out["seen"][f"{n}:mixed"].split("-")[1:3] == [mixed.trace_id, mixed.span_id]
    # A retry is no error; a failure is, with its type and not its message.
    flaky = by_name["job test.flaky"][0]
    assert flaky.attributes["arq.job.outcome"] == "retry" and not flaky.error
    assert flaky.attributes["arq.job.try"] == 2
    broken = by_name["job test.broken"][0]
    assert broken.attributes["arq.job.outcome"] == "error" and broken.error
    assert broken.attributes["error.type"] == "ValueError"
    assert "bad message" not in json.dumps(broken.attributes)
    assert broken.parent_span_id == requests["request 1"].span_id
    # Log lines name the trace they belong to.
    handled = {line["msg"]: line for line in out["logs"] if line["msg"].startswith("handled")}
    assert handled["handled 0"]["trace_id"] in {lone.trace_id, requests["request 0"].trace_id}
    assert {line["trace_id"] for line in out["logs"] if line["msg"] == "handled 2"} == {
        mixed.trace_id
    }
