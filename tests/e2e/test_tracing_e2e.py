"""Traces across HTTP and jobs: the whole stack exporting to a local OTLP/HTTP receiver."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.e2e.campaign import OPERATOR_PERMISSIONS, poll, publish_campaign, reward_records
from tests.e2e.conftest import RunningPlatform, start_platform
from tests.infra import Infra
from tests.otlp import ReceivedSpan, Receiver, otlp_receiver, trace_of

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def traced(
    infra: Infra, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningPlatform, Receiver]]:
    with otlp_receiver() as receiver:
        env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
            # Export within a tenth of a second instead of five.
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            "TRACE_SQL": "true",
        }
        with start_platform(infra, tmp_path_factory, env, name="otel") as platform:
            yield platform, receiver


def _server_span(spans: list[ReceivedSpan], service: str, name: str) -> ReceivedSpan | None:
    return next(
        (s for s in spans if s.service == service and s.kind == "server" and s.name == name),
        None,
    )


def test_one_trace_from_the_event_request_through_every_job(
    traced: tuple[RunningPlatform, Receiver],
) -> None:
    p, receiver = traced
    op = p.token("operator", sub="ops-1", permissions=OPERATOR_PERMISSIONS)
    backend = p.token("service", sub="broker-backend")
    alice = p.token("user", sub="alice", app="broker-app")
    http = httpx.Client(timeout=10)
    now = datetime.now(UTC)

    _, activity = publish_campaign(http, p.urls, op)
    code = http.get(f"{p.urls['referral']}/v1/me/invite-code", headers=alice).json()["code"]

    # The request's own trace: a caller's traceparent is continued, not replaced.
    caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    event = {
        "event_id": "reg-bob-traced",
        "type": "user.registered",
        "user_id": "bob",
        "app_id": "broker-app",
        "occurred_at": now.isoformat(),
        "invite_code": code,
    }
    accepted = http.post(
        f"{p.urls['activity']}/v1/events",
        headers={**backend, "traceparent": f"00-{caller_trace}-00f067aa0ba902b7-01"},
        json=event,
    )
    assert accepted.json()["status"] == "accepted", accepted.text

    def records() -> list[dict[str, Any]]:
        return reward_records(http, p.urls, op, activity)

    issued = poll(records, lambda rs: rs and rs[0]["status"] == "issued")
    assert [r["status"] for r in issued] == ["issued"], p.log_tail()

    expected_jobs = {
        ("activity", "job activity.evaluate_event"),
        ("referral", "job referral.user_registered"),
        ("reward", "job reward.create_from_grant"),
        ("activity", "job activity.record_status_changed"),
        ("activity", "job activity.binding_changed"),
    }

    def jobs_in(spans: list[ReceivedSpan]) -> set[tuple[str, str]]:
        return {(s.service, s.name) for s in trace_of(spans, caller_trace) if s.kind == "consumer"}

    spans = receiver.wait_for(lambda spans: expected_jobs <= jobs_in(spans))
    trace = trace_of(spans, caller_trace)
    assert expected_jobs <= jobs_in(spans), sorted({(s.service, s.name) for s in trace})

    # The API request's span is the root of what it caused, in the activity API's process.
    request = _server_span(trace, "activity", "POST /v1/events")
    assert request is not None and request.process == "api"
    assert request.parent_span_id == "00f067aa0ba902b7"
    assert request.attributes["http.response.status_code"] == accepted.status_code
    by_id = {s.span_id: s for s in trace}
    for span in trace:
        if span is not request:  # every other span hangs from a span of the same trace
            assert span.parent_span_id in by_id, span
    # Each job runs in its worker and descends from the span that wrote its message: the
    # evaluation and the registration from the event request, the reward from the
    # evaluation, the reward's status change (back in activity) from the reward's creation,
    # the binding's news (back in activity) from the registration.
    jobs = {s.name: s for s in trace if s.kind == "consumer"}

    def ancestors(span: ReceivedSpan) -> list[str]:
        chain = []
        while span.parent_span_id in by_id:
            span = by_id[span.parent_span_id]
            chain.append(span.name)
        return chain

    for job in jobs.values():
        assert job.process == "worker", job
        assert job.attributes["arq.job.outcome"] == "ok", job
        assert not job.error
    assert "POST /v1/events" in ancestors(jobs["job activity.evaluate_event"])
    assert "POST /v1/events" in ancestors(jobs["job referral.user_registered"])
    assert "job activity.evaluate_event" in ancestors(jobs["job reward.create_from_grant"])
    assert "job reward.create_from_grant" in ancestors(jobs["job activity.record_status_changed"])
    assert "job referral.user_registered" in ancestors(jobs["job activity.binding_changed"])
    # TRACE_SQL: statements are spans, their text without parameters.
    statements = [
        s
        for s in trace
        if s.attributes.get("db.system") == "postgresql"
        or s.attributes.get("db.system.name") == "postgresql"
    ]
    assert {s.service for s in statements} >= {"activity", "reward"}, trace
    ingest = [s for s in statements if s.service == "activity" and s.process == "api"]
    assert ingest and all("bob" not in str(s.attributes) for s in ingest)


def test_service_calls_carry_the_trace_and_queries_stay_out(
    traced: tuple[RunningPlatform, Receiver],
) -> None:
    p, receiver = traced
    op = p.token("operator", sub="ops-2", permissions=OPERATOR_PERMISSIONS)
    http = httpx.Client(timeout=10)
    missing = "00000000-0000-4000-8000-000000000000"
    now = datetime.now(UTC)
    # Creating an activity asks the reward service about its prize over HTTP: here an
    # unknown one, so the request fails, and the call is in its trace all the same.
    create_trace, read_trace = "a" * 32, "b" * 32
    refused = http.post(
        f"{p.urls['activity']}/v1/activities",
        headers={**op, "traceparent": f"00-{create_trace}-{'1' * 16}-01"},
        json={
            "kind": "basic",
            "name": {"en": "Gift of nothing"},
            "starts_at": now.isoformat(),
            "ends_at": (now + timedelta(days=1)).isoformat(),
            "rules": [{"task": "register", "prize_id": missing}],
        },
    )
    assert refused.status_code == 422, refused.text
    listed = http.get(
        f"{p.urls['reward']}/v1/reward-records",
        headers={**op, "traceparent": f"00-{read_trace}-{'2' * 16}-01"},
        params={"user_id": "carol-secret", "limit": 5},
    )
    assert listed.status_code == 200, listed.text
    # A probe is no trace, even one that names a trace.
    probe_trace = "c" * 32
    probe = http.get(
        f"{p.urls['reward']}/healthz", headers={"traceparent": f"00-{probe_trace}-{'3' * 16}-01"}
    )
    assert probe.status_code == 200

    def found(spans: list[ReceivedSpan]) -> bool:
        create, read = trace_of(spans, create_trace), trace_of(spans, read_trace)
        return (
            _server_span(create, "reward", "GET /v1/prizes/{prize_id}") is not None
            and _server_span(create, "activity", "POST /v1/activities") is not None
            and _server_span(read, "reward", "GET /v1/reward-records") is not None
        )

    spans = receiver.wait_for(found)
    trace = trace_of(spans, create_trace)
    lookup = _server_span(trace, "reward", "GET /v1/prizes/{prize_id}")
    create = _server_span(trace, "activity", "POST /v1/activities")
    assert lookup is not None and create is not None, trace
    assert lookup.attributes["url.path"] == f"/v1/prizes/{missing}"
    assert lookup.attributes["http.response.status_code"] == 404
    assert create.attributes["http.response.status_code"] == 422
    # The reward API's span is a child of the activity API's client span for that call.
    client = next(s for s in trace if s.span_id == lookup.parent_span_id)
    assert client.kind == "client" and client.service == "activity" and client.process == "api"
    assert client.attributes["http.response.status_code"] == 404
    # Query strings may name users: never in a span, neither server's nor client's.
    read = _server_span(trace_of(spans, read_trace), "reward", "GET /v1/reward-records")
    assert read is not None and read.attributes["url.query"] == "[redacted]"
    assert all("carol-secret" not in str(s.attributes) for s in spans)
    time.sleep(0.5)  # the probe's span, were there one, would have been exported by now
    assert not trace_of(receiver.snapshot(), probe_trace)
