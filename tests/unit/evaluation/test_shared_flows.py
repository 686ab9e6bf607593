"""The daily run's shared flow sums decide exactly what ``engine.achievement`` decides."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from activity_service.evaluation.daily_run import SharedFlows
from activity_service.evaluation.engine import MissingRate, UserFacts, Window, achievement
from activity_service.progress.flows import CUMULATIVE_TASKS, Flow, FlowKind
from activity_service.tenants.fx import RateTable

HK = ZoneInfo("Asia/Hong_Kong")
START = datetime.fromisoformat("2026-12-01T00:00:00+08:00")
WINDOW = Window(START, START + timedelta(days=10))
RATES = RateTable()
RATES.add("USD", "HKD", START - timedelta(days=30), Decimal("7.8"))

flows = st.lists(
    st.builds(
        lambda minutes, n, kind, amount, currency: Flow(
            START + timedelta(minutes=minutes), f"e{n}", kind, Decimal(amount), currency
        ),
        st.integers(-3 * 1440, 14 * 1440),
        st.integers(0, 10_000),
        st.sampled_from(list(FlowKind)),
        st.integers(1, 50_000),
        st.sampled_from(["HKD", "HKD", "USD"]),
    ),
    max_size=12,
)
tasks = st.sampled_from(sorted(t.value for t in CUMULATIVE_TASKS))


@settings(max_examples=300, deadline=None)
@given(
    flows=flows,
    rules=st.lists(
        st.tuples(tasks, st.integers(-10_000, 120_000), st.sampled_from(["HKD", "USD"])),
        min_size=1,
        max_size=6,
    ),
    until_days=st.integers(0, 12),
)
def test_same_answers_as_the_engine_for_every_rule_of_a_pass(
    flows: list[Flow], rules: list[tuple[str, int, str]], until_days: int
) -> None:
    facts = UserFacts("u1", flows=flows)
    shared = SharedFlows(facts)
    until = START + timedelta(days=until_days)
    for n, (task, threshold, currency) in enumerate(rules):
        rule = {"id": f"r{n}", "task": task, "threshold": str(threshold), "currency": currency}
        try:
            expected = achievement(rule, facts, WINDOW, zone=HK, rates=RATES, until=until)
        except MissingRate:
            with pytest.raises(MissingRate):
                shared.achievement(rule, WINDOW, zone=HK, rates=RATES, until=until)
            continue
        assert shared.achievement(rule, WINDOW, zone=HK, rates=RATES, until=until) == expected


def test_a_missing_rate_is_reported_to_every_rule_that_needs_it() -> None:
    flow = Flow(START + timedelta(hours=1), "e1", FlowKind.deposit, Decimal(100), "EUR")
    shared = SharedFlows(UserFacts("u1", flows=[flow]))
    rule = {"id": "r1", "task": "deposit_reached", "threshold": "10", "currency": "HKD"}
    for _ in range(2):
        with pytest.raises(MissingRate):
            shared.achievement(rule, WINDOW, zone=HK, rates=RATES, until=WINDOW.ends_at)
