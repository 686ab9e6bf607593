"""The dry-run's orders (achievement order for the limits, listing order for the answer),
made by one stable sort per key or by user then each user's run, are the orders of one sort
by the tuple of the keys."""

from __future__ import annotations

from datetime import datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from activity_service.evaluation.dry_run import _ACHIEVED, _USER, _listed, sorted_in_runs
from activity_service.evaluation.dry_run_decisions import Candidate, sorted_by

START = datetime.fromisoformat("2026-12-01T00:00:00+08:00")

candidates = st.lists(
    st.builds(
        Candidate,
        user_id=st.sampled_from(["a", "b", "c"]),
        rule_id=st.sampled_from(["r", "r:t1", "r:t1:bonus"]),
        prize_id=st.just("p"),
        task=st.just("register"),
        achieved_at=st.integers(0, 3).map(lambda m: START + timedelta(minutes=m)),
        order=st.integers(0, 3),
        counterpart_id=st.sampled_from([None, "x", "y"]),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(candidates)
def test_one_sort_per_key_is_one_sort_by_their_tuple(drawn: list[Candidate]) -> None:
    achieved = sorted(
        drawn, key=lambda c: (c.achieved_at, c.order, c.user_id, c.counterpart_id or "")
    )
    assert sorted_by(list(drawn), *_ACHIEVED) == achieved
    listed = sorted(
        drawn,
        key=lambda c: (c.user_id, c.achieved_at, c.order, c.rule_id, c.counterpart_id or ""),
    )
    assert sorted_in_runs(list(drawn), _USER, _listed) == listed
