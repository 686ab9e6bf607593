"""How the relay groups outbox messages into deliveries (pure)."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

from service_kit.outbox import plan_deliveries
from service_kit.outbox.bundles import bundle, items_of, weight


def _row(queue: str, job_name: str, job_id: str) -> SimpleNamespace:
    return SimpleNamespace(
        id=uuid.uuid4(), queue=queue, job_name=job_name, job_id=job_id, payload={"k": job_id}
    )


def test_messages_of_one_job_name_travel_together_in_order() -> None:
    rows = [
        _row("activity", "activity.evaluate_event", "e1"),
        _row("referral", "referral.user_registered", "r1"),
        _row("activity", "activity.evaluate_event", "e2"),
        _row("activity", "activity.evaluate_event", "e3"),
    ]
    deliveries = plan_deliveries(rows, max_per_job=100)
    assert [(d.queue, d.job_name, [p["k"] for p in d.payloads]) for d in deliveries] == [
        ("activity", "activity.evaluate_event", ["e1", "e2", "e3"]),
        ("referral", "referral.user_registered", ["r1"]),
    ]
    # A batch gets a fresh id; a lone message keeps its own (arq drops a resend of it).
    assert deliveries[0].job_id.startswith("batch:")
    assert deliveries[1].job_id == "r1"
    assert deliveries[0].message_ids == [rows[0].id, rows[2].id, rows[3].id]


def test_no_delivery_carries_more_than_max_per_job() -> None:
    rows = [_row("reward", "reward.create_from_grant", f"g{i}") for i in range(250)]
    sizes = [len(d.payloads) for d in plan_deliveries(rows, max_per_job=100)]
    assert sizes == [100, 100, 50]


def _bundle_row(job_id: str, items: int) -> SimpleNamespace:
    return SimpleNamespace(
        id=uuid.uuid4(),
        queue="activity",
        job_name="activity.evaluate_event",
        job_id=job_id,
        payload=bundle([{"event_id": f"{job_id}-{n}"} for n in range(items)], "t1"),
    )


def test_a_bundle_weighs_its_items_so_a_delivery_carries_no_more_items_than_before() -> None:
    rows = [_bundle_row(f"b{i}", 20) for i in range(12)] + [
        _row("activity", "activity.evaluate_event", "e1")
    ]
    deliveries = plan_deliveries(rows, max_per_job=100)
    carried = [sum(len(items_of(p)) for p in d.payloads) for d in deliveries]
    assert carried == [100, 100, 41]
    # A bundle bigger than a delivery still leaves, alone.
    big = plan_deliveries([_bundle_row("big", 150)], max_per_job=100)
    assert [len(d.payloads) for d in big] == [1] and big[0].job_id == "big"


def test_items_of_a_bundle_carry_its_request_and_a_message_is_its_own_item() -> None:
    payload = {
        **bundle([{"event_id": "e1"}, {"event_id": "e2", "_meta": {"request_id": "r2"}}], "t1"),
        "_meta": {"request_id": "r1"},
    }
    assert items_of(payload) == [
        {"event_id": "e1", "_meta": {"request_id": "r1"}},
        {"event_id": "e2", "_meta": {"request_id": "r2"}},
    ]
    assert items_of({"event_id": "e3"}) == [{"event_id": "e3"}]
    assert weight({"event_id": "e3"}) == 1 and weight(bundle([{}, {}], "t1")) == 2
