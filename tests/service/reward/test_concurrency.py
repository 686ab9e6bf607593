"""Real concurrency on Postgres: racing operator moves, racing issuance, stock exhaustion."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from sqlalchemy import func, select

from reward_service.prizes.models import Prize
from reward_service.records.tasks import issue_record
from reward_service.shipments.models import Shipment
from reward_service.wallet.models import WalletCoupon
from service_kit.http import ServiceClient
from tests.service.harness import Platform
from tests.service.reward.helpers import (
    count,
    coupon_prize,
    create_record,
    grant,
    issuing_record,
    physical_prize,
    record,
    transitions,
)


async def _manual_record(platform: Platform) -> str:
    prize = await coupon_prize(platform)
    created = await create_record(platform, grant(prize["id"], form="manual"))
    assert created is not None
    return str(created.id)


async def _post(platform: Platform, record_id: str, action: str) -> Any:
    return await platform.reward.post(
        f"/v1/reward-records/{record_id}/{action}", headers=platform.operator()
    )


async def test_two_concurrent_submits_one_wins(platform: Platform) -> None:
    for _ in range(5):
        record_id = await _manual_record(platform)
        answers = await asyncio.gather(*(_post(platform, record_id, "submit") for _ in range(2)))
        codes = sorted(a.status_code for a in answers)
        assert codes == [200, 409], [a.text for a in answers]
        loser = next(a for a in answers if a.status_code == 409)
        assert loser.json()["code"] == "invalid_transition"
        assert [t[2] for t in await transitions(platform, record_id)] == ["create", "submit"]
        assert (await record(platform, record_id)).version == 2


async def test_submit_racing_cancel_one_wins(platform: Platform) -> None:
    outcomes = set()
    for _ in range(6):
        record_id = await _manual_record(platform)
        submit, cancel = await asyncio.gather(
            _post(platform, record_id, "submit"), _post(platform, record_id, "cancel")
        )
        assert sorted([submit.status_code, cancel.status_code]) == [200, 409]
        final = (await record(platform, record_id)).status
        assert final == ("issuing" if submit.status_code == 200 else "cancelled")
        assert len(await transitions(platform, record_id)) == 2
        outcomes.add(final)
    assert outcomes  # whichever won, exactly one did


def _ctx(platform: Platform) -> dict[str, Any]:
    settings = platform.settings["reward"]
    return {
        "db": platform.db("reward"),
        "settings": settings,
        "clock": platform.clock,
        "clocks": platform.job_clocks("reward"),
        "http": ServiceClient(settings, mounts=platform.mounts),
    }


async def test_stock_exhaustion_under_concurrency(platform: Platform) -> None:
    stock, extra = 6, 4
    prize = await physical_prize(platform, stock=stock)
    ids = []
    for i in range(stock + extra):
        created = await create_record(platform, grant(prize["id"], f"u-{i}", form="manual"))
        assert created is not None
        ids.append(str(created.id))
    for record_id in ids:
        assert (await _post(platform, record_id, "submit")).status_code == 200
    ctx = _ctx(platform)
    try:
        results = await asyncio.gather(
            *(issue_record(ctx, uuid.UUID(record_id)) for record_id in ids)
        )
    finally:
        await ctx["http"].aclose()
    assert sorted(r or "" for r in results) == ["failed"] * extra + ["issued"] * stock
    statuses = [(await record(platform, r)) for r in ids]
    assert sum(r.status == "issued" for r in statuses) == stock
    failed = [r for r in statuses if r.status == "failed"]
    assert len(failed) == extra and {r.failure_reason for r in failed} == {"out_of_stock"}
    async with platform.db("reward").session() as session:
        left = await session.scalar(select(Prize.stock).where(Prize.id == prize["id"]))
        shipments = await session.scalar(select(func.count()).select_from(Shipment))
    assert left == 0 and shipments == stock


async def test_concurrent_redelivery_of_one_issuance_adds_one_entry(platform: Platform) -> None:
    prize = await coupon_prize(platform)
    created = await issuing_record(platform, grant(prize["id"]))
    assert created.status == "issuing"
    ctx = _ctx(platform)
    try:
        results = await asyncio.gather(*(issue_record(ctx, created.id) for _ in range(4)))
    finally:
        await ctx["http"].aclose()
    assert sorted(r or "" for r in results) == ["", "", "", "issued"]
    assert await count(platform, WalletCoupon) == 1
    assert [t[1] for t in await transitions(platform, created.id)] == [
        "pending",
        "issuing",
        "issued",
    ]
