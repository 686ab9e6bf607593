"""A delivery bigger than its time budget (grants to record, records to issue): what was
done so far is committed and the rest comes in the next tries, which skip the grants that
have their record in one query; a delivery of grants sent again records nothing twice."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import func, select

from contracts import jobs
from contracts.payloads import GRANT_BUNDLE_COLUMNS
from reward_service.records import tasks
from reward_service.records.models import RewardRecord
from service_kit import worker as service_worker
from tests.service.harness import Platform
from tests.service.reward.helpers import coupon_prize, grant, issuing_record


async def _deliver(
    platform: Platform, payloads: list[dict[str, Any]], job: str = jobs.REWARD_CREATE_FROM_GRANT
) -> Any:
    """One delivery carrying ``payloads``, run by a real reward worker (burst)."""
    return await platform.deliver("reward", job, payloads)


async def _records(platform: Platform) -> list[tuple[str, str]]:
    async with platform.db("reward").session() as session:
        rows = await session.execute(
            select(RewardRecord.grant_key, RewardRecord.number).order_by(RewardRecord.number)
        )
        return [(k, n) for k, n in rows.all()]


async def test_a_delivery_over_its_budget_commits_what_it_made_and_goes_on(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    prize = await coupon_prize(platform)
    grants = [grant(prize["id"], f"u-{i}", key=f"g-{i}") for i in range(3)]
    payloads = [g.model_dump(mode="json") for g in grants]

    # No time at all: each try makes one record (at least one is always made), commits it
    # and hands the rest to the next try.
    monkeypatch.setattr(service_worker, "DELIVERY_BUDGET_SECONDS", 0.0)
    worker = await _deliver(platform, payloads)
    assert (worker.jobs_retried, worker.jobs_complete, worker.jobs_failed) == (2, 1, 0)
    made = await _records(platform)
    assert sorted(k for k, _ in made) == ["g-0", "g-1", "g-2"]

    # Sent again whole (as the sweep does after a failure): nothing made twice, the
    # records as they were.
    monkeypatch.setattr(service_worker, "DELIVERY_BUDGET_SECONDS", 10.0)
    again = await _deliver(platform, payloads)
    assert (again.jobs_retried, again.jobs_complete, again.jobs_failed) == (0, 1, 0)
    assert await _records(platform) == made
    # One new grant among the three old ones: only its record is made.
    fresh = grant(prize["id"], "u-9", key="g-9").model_dump(mode="json")
    last = await _deliver(platform, [*payloads, fresh])
    assert (last.jobs_retried, last.jobs_complete, last.jobs_failed) == (0, 1, 0)
    after = await _records(platform)
    assert after[:3] == made and [k for k, _ in after[3:]] == ["g-9"]
    async with platform.db("reward").session() as session:
        assert await session.scalar(select(func.count()).select_from(RewardRecord)) == 4


async def test_a_delivery_stopped_more_often_than_arqs_tries_still_finishes(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long overload stops a big delivery at its budget again and again: every stop made
    progress, so the delivery goes on past arq's ten tries instead of failing (the sweep
    would send it again, a step towards a dead letter)."""
    prize = await coupon_prize(platform)
    payloads = [
        grant(prize["id"], f"u-{i}", key=f"g-{i}").model_dump(mode="json") for i in range(14)
    ]
    monkeypatch.setattr(service_worker, "DELIVERY_BUDGET_SECONDS", 0.0)
    worker = await _deliver(platform, payloads)
    assert (worker.jobs_retried, worker.jobs_complete, worker.jobs_failed) == (13, 1, 0)
    assert sorted(k for k, _ in await _records(platform)) == sorted(f"g-{i}" for i in range(14))


async def test_an_issuance_over_its_budget_goes_on_in_the_next_try(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    prize = await coupon_prize(platform)
    made = [await issuing_record(platform, grant(prize["id"], f"u-{i}")) for i in range(3)]
    payloads = [{"tenant_id": "tenant-a", "record_id": str(r.id)} for r in made]
    monkeypatch.setattr(service_worker, "DELIVERY_BUDGET_SECONDS", 0.0)
    worker = await _deliver(platform, payloads, jobs.REWARD_ISSUE)
    # One record issued per try; the last try finds the others issued and issues its own.
    assert (worker.jobs_retried, worker.jobs_complete, worker.jobs_failed) == (2, 1, 0)
    async with platform.db("reward").session() as session:
        statuses = await session.scalars(
            select(RewardRecord.status).where(RewardRecord.id.in_([r.id for r in made]))
        )
        assert list(statuses) == ["issued"] * 3


async def test_records_of_a_big_delivery_are_committed_a_transaction_at_a_time(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The records are written after the last message of a transaction (``finish``): the
    budget can stop a delivery only between transactions, so a transaction holds at most
    ``GRANTS_PER_TRANSACTION`` grants and a delivery whose writes outlast the budget goes
    on in its next try instead of running into the job timeout."""
    prize = await coupon_prize(platform)
    payloads = [
        grant(prize["id"], f"u-{i}", key=f"g-{i}").model_dump(mode="json") for i in range(60)
    ]
    written: list[int] = []
    create_from_grants = tasks.service.create_from_grants

    async def slow_writes(session: Any, grants: Any) -> Any:
        written.append(len(grants))
        created = await create_from_grants(session, grants)
        await asyncio.sleep(2.1)  # the writes outlast the budget
        return created

    monkeypatch.setattr(tasks.service, "create_from_grants", slow_writes)
    monkeypatch.setattr(service_worker, "DELIVERY_BUDGET_SECONDS", 2.0)
    worker = await _deliver(platform, payloads)
    assert worker.jobs_failed == 0 and worker.jobs_retried >= 2
    assert max(written) <= tasks.GRANTS_PER_TRANSACTION and sum(written) == 60
    made = await _records(platform)
    assert sorted(k for k, _ in made) == sorted(f"g-{i}" for i in range(60))


def _bundle(payloads: list[dict[str, Any]]) -> dict[str, Any]:
    """The grants in one message, as a daily run announces them: the shared fields once,
    a row of the per-grant columns each (``contracts.payloads.grants_of_message``)."""
    columns = list(GRANT_BUNDLE_COLUMNS)
    template = {k: v for k, v in payloads[0].items() if k not in columns}
    return {
        "tenant_id": payloads[0]["tenant_id"],
        "columns": columns,
        "templates": [template],
        "grants": [[0 if c == "rule" else p[c] for c in columns] for p in payloads],
    }


async def test_a_message_carrying_many_grants_records_each_once(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A daily run's message carries many grants: each gets its record, as if each had its
    message; the budget and the transactions count grants, not messages; a message of one
    grant (queued before bundles, or from the real-time path) is read beside it, and the
    delivery sent again records nothing twice."""
    prize = await coupon_prize(platform)
    singles = [
        grant(prize["id"], f"u-{i}", key=f"g-{i}").model_dump(mode="json") for i in range(60)
    ]
    bundled = [_bundle(singles[:30]), _bundle(singles[30:59])]
    delivery = [*bundled, singles[59]]
    written: list[int] = []
    create_from_grants = tasks.service.create_from_grants

    async def counted(session: Any, grants: Any) -> Any:
        written.append(len(grants))
        return await create_from_grants(session, grants)

    monkeypatch.setattr(tasks.service, "create_from_grants", counted)
    worker = await _deliver(platform, delivery)
    assert (worker.jobs_retried, worker.jobs_complete, worker.jobs_failed) == (0, 1, 0)
    assert written == [25, 25, 10]  # 25 grants a transaction, across the messages
    made = await _records(platform)
    assert sorted(k for k, _ in made) == sorted(f"g-{i}" for i in range(60))
    async with platform.db("reward").session() as session:
        users = dict(
            (await session.execute(select(RewardRecord.grant_key, RewardRecord.user_id))).all()
        )
    assert all(users[f"g-{i}"] == f"u-{i}" for i in range(60))

    # No time at all: one grant per try, each try starting after the last one recorded.
    monkeypatch.setattr(service_worker, "DELIVERY_BUDGET_SECONDS", 0.0)
    fresh = [grant(prize["id"], f"v-{i}", key=f"h-{i}").model_dump(mode="json") for i in range(3)]
    worker = await _deliver(platform, [_bundle(fresh)])
    assert (worker.jobs_retried, worker.jobs_complete, worker.jobs_failed) == (2, 1, 0)

    # Sent again whole: nothing recorded twice.
    monkeypatch.setattr(service_worker, "DELIVERY_BUDGET_SECONDS", 10.0)
    again = await _deliver(platform, [*delivery, _bundle(fresh)])
    assert (again.jobs_retried, again.jobs_complete, again.jobs_failed) == (0, 1, 0)
    async with platform.db("reward").session() as session:
        assert await session.scalar(select(func.count()).select_from(RewardRecord)) == 63
