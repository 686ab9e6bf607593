"""Which published activities an event type can affect."""

from __future__ import annotations

import uuid
from typing import Any

from activity_service.activities.models import Activity
from activity_service.evaluation.catalog import Catalog


def _activity(kind: str, *tasks: str, timing: str = "real_time") -> Activity:
    rules: list[dict[str, Any]] = [{"id": t, "task": t} for t in tasks]
    return Activity(id=uuid.uuid4(), kind=kind, config={"rules": rules, "timing": timing})


def test_index_by_event_type_keeps_the_published_order() -> None:
    reg = _activity("basic", "register")
    download = _activity("basic", "download")
    deposit = _activity("referral", "first_deposit", "net_deposit")
    amount_only = _activity("basic", "net_deposit")
    catalog = Catalog.build(7, [reg, download, deposit, amount_only])

    assert catalog.triggered_by("user.registered") == (reg, download)
    assert catalog.triggered_by("app.login") == (download,)
    assert catalog.triggered_by("cash.deposited") == (deposit,)
    assert catalog.triggered_by("trade.executed") == ()
    assert catalog.referral_real_time == (deposit,)
    assert catalog.version == 7


def test_referral_activities_with_only_amount_tasks_are_not_decided_at_a_binding() -> None:
    amount = _activity("referral", "net_deposit")
    assert Catalog.build(1, [amount]).referral_real_time == ()
