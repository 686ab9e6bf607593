"""Fault test: registrations through invite codes stream into the activity API while Redis
loses its data (FLUSHALL; stopped and started again empty), PostgreSQL crashes and comes
back, and each of the three workers is SIGKILLed. Afterwards every registration has exactly
one issued reward record, one wallet entry, its registration binding to the right inviter
and an ``issued`` grant in the activity ledger: no reward lost, none duplicated.

The scenario (own Redis and PostgreSQL, the six real processes, the fault plan, the counts)
lives in ``pipeline_scenario.py``; ``bench/faults.py`` runs it bigger and longer.
"""

from __future__ import annotations

import pytest

from tests.fault.pipeline_scenario import ScenarioConfig, run_scenario

pytestmark = pytest.mark.fault

CONFIG = ScenarioConfig(
    name="test",
    registrations=300,
    rate_per_second=20.0,
    inviters=20,
    pg_down_seconds=6.0,
    settle_timeout_seconds=120.0,
)


def test_no_reward_lost_or_duplicated_when_redis_postgres_and_workers_fail() -> None:
    report = run_scenario(CONFIG)
    text = report.format()
    print("\n" + text)

    assert not report.problems(), text
    # While PostgreSQL is down the API answers 503 with Retry-After: an outage is not an
    # internal error, and the sender knows when to come back.
    outage = dict(report.observations.outcomes(during_outage=True))
    assert report.errors_500() == 0, f"POST /v1/events answered 500 (during the outage: {outage})"
    retry_after = report.observations.retry_after
    assert "absent" not in retry_after, f"503 without Retry-After: {dict(retry_after)}"
