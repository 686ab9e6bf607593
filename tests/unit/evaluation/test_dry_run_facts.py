"""The dry-run's facts from its event records are the facts ``service.facts_of`` reads from
the same events."""

from __future__ import annotations

from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from activity_service.evaluation.dry_run_decisions import facts_of_records
from activity_service.evaluation.service import FACT_TYPES, facts_of
from activity_service.progress.flows import EVENT_FLOWS

START = datetime.fromisoformat("2026-12-01T00:00:00+08:00")

records = st.lists(
    st.tuples(
        st.sampled_from(FACT_TYPES),
        st.integers(0, 10_000),
        st.sampled_from([None, "app-1", "app-2"]),
        st.integers(0, 60 * 24 * 30),
        st.sampled_from(["100", "0.5", "12000.25"]),
        st.sampled_from(["HKD", "USD"]),
        st.sampled_from([None, "ent-1"]),
        st.sampled_from([None, "Acme"]),
    ),
    max_size=12,
)


def _as_event(record: tuple[Any, ...]) -> SimpleNamespace:
    """The event ``facts_of`` reads, with the payload fields the record carries."""
    _, kind, event_id, app_id, at, amount, currency, enterprise_id, enterprise_name = record
    payload: dict[str, Any] = {}
    if kind in EVENT_FLOWS:
        payload.update(amount=amount, currency=currency)
    if enterprise_id is not None:
        payload.update(enterprise_id=enterprise_id, enterprise_name=enterprise_name)
    return SimpleNamespace(
        type=kind, event_id=event_id, app_id=app_id, occurred_at=at, payload=payload
    )


@settings(max_examples=300, deadline=None)
@given(records, st.sampled_from([None, START]))
def test_the_same_facts_as_facts_of(drawn: list[tuple[Any, ...]], login: datetime | None) -> None:
    rows = sorted(
        (
            ("u1", kind, f"e{n}", app, START + timedelta(minutes=m), amount, cur, ent, name)
            for kind, n, app, m, amount, cur, ent, name in drawn
        ),
        key=lambda r: (r[4], r[2]),
    )
    expected = facts_of("u1", [_as_event(r) for r in rows], login)
    assert facts_of_records("u1", rows, login) == expected
