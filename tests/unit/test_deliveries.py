"""How the relay groups outbox messages into deliveries (pure)."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

from service_kit.outbox import plan_deliveries


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
