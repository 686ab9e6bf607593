"""Nothing stuck: the reconciler re-drives records whose job died or was lost, submits
automatic records whose submit was lost, and settles lock-ups at expiry (SPEC §3.3)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import update

from contracts.payloads import LockUp
from reward_service.config import RewardSettings
from reward_service.db import OutboxMessage
from reward_service.records.models import RewardRecord
from reward_service.wallet.models import WalletCoupon
from tests.service.harness import Platform
from tests.service.reward.helpers import (
    count,
    coupon_prize,
    create_record,
    drain,
    grant,
    issuing_record,
    reconcile,
    record,
    status_messages,
    transitions,
)

POSITIONS_URL = "http://positions.test"
LOCK = LockUp(amount=Decimal("10000"), currency="HKD", days=30)


async def lose_queued_jobs(platform: Platform) -> None:
    """As if Redis lost the queue after the relay sent it: the outbox says sent, no job."""
    async with platform.db("reward").session() as session:
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.job_name == "reward.issue")
            .values(sent_at=platform.clock.now())
        )


async def test_a_record_whose_job_was_lost_is_found_and_issued(platform: Platform) -> None:
    prize = await coupon_prize(platform)
    created = await issuing_record(platform, grant(prize["id"]))
    assert created.status == "issuing"
    await lose_queued_jobs(platform)
    await drain(platform)
    assert (await record(platform, created.id)).status == "issuing"

    platform.clock.advance(timedelta(seconds=10))
    assert (await reconcile(platform)).redriven == 0  # not past the deadline yet

    platform.clock.advance(timedelta(seconds=25))
    report = await reconcile(platform)
    assert report.redriven == 1
    # A second pass before the next deadline does not pile up more jobs.
    assert (await reconcile(platform)).redriven == 0
    await drain(platform)
    assert (await record(platform, created.id)).status == "issued"
    assert await count(platform, WalletCoupon) == 1
    # A stale re-drive of an issued record does nothing.
    platform.clock.advance(timedelta(minutes=5))
    assert (await reconcile(platform)).redriven == 0


async def test_a_job_that_died_mid_issue_is_redriven_once_per_deadline(
    platform: Platform,
) -> None:
    prize = await coupon_prize(platform)
    created = [await issuing_record(platform, grant(prize["id"], f"u-{i}")) for i in range(3)]
    await lose_queued_jobs(platform)
    platform.clock.advance(timedelta(seconds=31))
    assert (await reconcile(platform)).redriven == 3
    # The re-driven jobs are lost too (the worker died again): the next deadline re-drives.
    await lose_queued_jobs(platform)
    platform.clock.advance(timedelta(seconds=31))
    assert (await reconcile(platform)).redriven == 3
    await drain(platform)
    for row in created:
        assert row is not None
        assert (await record(platform, row.id)).status == "issued"
        assert [t[1] for t in await transitions(platform, row.id)] == [
            "pending",
            "issuing",
            "issued",
        ]
    assert await count(platform, WalletCoupon) == 3


async def test_an_automatic_record_whose_submit_was_lost_is_submitted(platform: Platform) -> None:
    prize = await coupon_prize(platform)
    created = await create_record(platform, grant(prize["id"], form="manual"))
    assert created is not None
    # e.g. written by an older version that queued the submit separately, which was lost
    async with platform.db("reward").session() as session:
        await session.execute(
            update(RewardRecord)
            .where(RewardRecord.id == created.id)
            .values(issuance_form="automatic")
        )
    platform.clock.advance(timedelta(seconds=31))
    report = await reconcile(platform)
    assert report.submitted == 1
    await drain(platform)
    assert (await record(platform, created.id)).status == "issued"


# --- lock-up ---------------------------------------------------------------------------


class Positions:
    """Stand-in for activity_service's lock-check endpoint (its contract: LockCheckBatch in,
    LockCheckAnswers out). An int answer for a user fails the whole call with that status."""

    def __init__(self) -> None:
        self.answers: dict[str, Any] = {}
        self.calls: list[tuple[str, dict[str, str]]] = []
        self.batches: list[int] = []
        self.app = FastAPI()

        @self.app.post("/v1/positions/lock-checks")
        async def lock_checks(request: Request) -> JSONResponse:
            assert request.headers["authorization"].startswith("Bearer ")
            checks = (await request.json())["checks"]
            self.batches.append(len(checks))
            answers = []
            for check in checks:
                self.calls.append((check["user_id"], check))
                answer = self.answers.get(check["user_id"])
                if isinstance(answer, int):
                    return JSONResponse({"code": "unavailable"}, status_code=answer)
                if answer is None:
                    return JSONResponse({"code": "not_found"}, status_code=404)
                answers.append(answer)
            return JSONResponse({"answers": answers})


@pytest.fixture
def positions(platform: Platform) -> Iterator[Positions]:
    stand_in = Positions()
    platform.mounts[POSITIONS_URL] = httpx.ASGITransport(app=stand_in.app)
    yield stand_in
    platform.mounts.pop(POSITIONS_URL, None)


def lock_settings(platform: Platform) -> RewardSettings:
    base = platform.settings["reward"]
    return base.model_copy(update={"activity_url": POSITIONS_URL})  # type: ignore[return-value]


async def locked_record(platform: Platform, user: str, form: str = "automatic") -> Any:
    prize = await coupon_prize(platform)
    created = await create_record(platform, grant(prize["id"], user, form=form, lock=LOCK))
    assert created is not None and created.status == "locked"
    return created


async def test_lock_held_releases_and_issues_automatic_records(
    platform: Platform, positions: Positions
) -> None:
    auto = await locked_record(platform, "u-auto")
    manual = await locked_record(platform, "u-manual", form="manual")
    positions.answers = {
        "u-auto": {"held": True, "min_position": "12000", "reason": None},
        "u-manual": {"held": True, "min_position": "10000", "reason": None},
    }
    settings = lock_settings(platform)
    platform.clock.advance(timedelta(days=29))
    assert (await reconcile(platform, settings)).released == 0
    assert positions.calls == []  # not asked before expiry

    platform.clock.advance(timedelta(days=1))
    report = await reconcile(platform, settings)
    assert report.released == 2
    assert positions.batches == [2]  # the tenant's lock-ups falling due: one question
    user, params = next(c for c in positions.calls if c[0] == "u-auto")
    assert params["currency"] == "HKD" and Decimal(params["amount"]) == Decimal("10000")
    assert params["from"].startswith("2026-11-23") and params["until"].startswith("2026-12-23")
    await drain(platform)
    assert (await record(platform, auto.id)).status == "issued"
    assert [t[2] for t in await transitions(platform, auto.id)] == [
        "create",
        "release_lock",
        "submit",
        "fulfil",
    ]
    assert (await record(platform, manual.id)).status == "pending"
    assert await status_messages(platform, manual.number) == ["locked", "pending"]


async def test_lock_broken_cancels_with_the_reason(
    platform: Platform, positions: Positions
) -> None:
    created = await locked_record(platform, "u-broke")
    positions.answers = {
        "u-broke": {"held": False, "min_position": "2500.5", "reason": "position fell below"}
    }
    platform.clock.advance(timedelta(days=31))
    report = await reconcile(platform, lock_settings(platform))
    assert report.broken == 1
    cancelled = await record(platform, created.id)
    assert cancelled.status == "cancelled"
    assert cancelled.failure_reason == "lock_broken: position fell below"
    detail = await platform.reward.get(
        f"/v1/reward-records/{created.id}", headers=platform.operator()
    )
    last = detail.json()["transitions"][-1]
    assert (last["from_status"], last["to_status"], last["action"]) == (
        "locked",
        "cancelled",
        "break_lock",
    )


@pytest.mark.parametrize("trouble", [404, 503])
async def test_unanswered_lock_check_leaves_the_record_locked_and_asks_later(
    platform: Platform, positions: Positions, trouble: int
) -> None:
    created = await locked_record(platform, "u-later")
    positions.answers = {"u-later": trouble}
    settings = lock_settings(platform)
    platform.clock.advance(timedelta(days=31))
    report = await reconcile(platform, settings)
    assert report.lock_checks_deferred == 1 and report.released == report.broken == 0
    assert (await record(platform, created.id)).status == "locked"
    asked = len(positions.calls)
    await reconcile(platform, settings)
    assert len(positions.calls) == asked  # not re-asked before the recheck interval
    positions.answers = {"u-later": {"held": True, "min_position": None, "reason": None}}
    platform.clock.advance(timedelta(seconds=settings.lock_recheck_seconds + 1))
    assert (await reconcile(platform, settings)).released == 1
    await drain(platform)
    assert (await record(platform, created.id)).status == "issued"


async def test_operator_cancel_before_expiry_wins_over_the_lock_check(
    platform: Platform, positions: Positions
) -> None:
    created = await locked_record(platform, "u-c")
    cancelled = await platform.reward.post(
        f"/v1/reward-records/{created.id}/cancel", headers=platform.operator()
    )
    assert cancelled.status_code == 200
    positions.answers = {"u-c": {"held": True}}
    platform.clock.advance(timedelta(days=31))
    report = await reconcile(platform, lock_settings(platform))
    assert report.released == 0 and positions.calls == []
    assert (await record(platform, created.id)).status == "cancelled"
