"""The records of a delivery of grants, written a statement per table for all of them:
each record's moves in order, one wallet coupon and one status message per record, and a
grant that fails for good leaving nothing behind while the others are recorded."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import select, text

from contracts import jobs
from contracts.payloads import LockUp
from reward_service.db import OutboxMessage
from reward_service.records.models import RecordTransition, RewardRecord
from reward_service.records.service import format_number
from reward_service.wallet.models import WalletCoupon
from reward_service.wallet.rules import CODE_ALPHABET, CODE_LENGTH
from service_kit.outbox.bundles import items_of
from tests.service.harness import Platform
from tests.service.reward.helpers import COUPON, cash_prize, coupon_prize, grant

_COUPON_MOVES = [
    (None, "pending", "create"),
    ("pending", "issuing", "submit"),
    ("issuing", "issued", "fulfil"),
]


async def _deliver(platform: Platform, payloads: list[dict[str, Any]]) -> Any:
    return await platform.deliver("reward", jobs.REWARD_CREATE_FROM_GRANT, payloads)


async def _written(platform: Platform) -> dict[str, Any]:
    """Every record, transition, wallet coupon and status message in the reward database."""
    async with platform.db("reward").session() as session:
        records = list(await session.scalars(select(RewardRecord)))
        moves = list(await session.scalars(select(RecordTransition).order_by(RecordTransition.id)))
        coupons = list(await session.scalars(select(WalletCoupon)))
        messages = list(
            await session.scalars(
                select(OutboxMessage).where(
                    OutboxMessage.job_name == jobs.ACTIVITY_RECORD_STATUS_CHANGED
                )
            )
        )
    return {"records": records, "moves": moves, "coupons": coupons, "messages": messages}


async def test_a_delivery_writes_each_records_moves_in_order_one_coupon_and_one_message(
    platform: Platform,
) -> None:
    coupon = await coupon_prize(platform)
    cash = await cash_prize(platform)
    lock = LockUp(days=30, amount=Decimal("1000"), currency="HKD", issue_after_lock=True)
    coupons = [grant(coupon["id"], f"u-{i}", key=f"c-{i}") for i in range(6)]
    others = [
        grant(cash["id"], "u-cash", key="cash-1"),
        grant(coupon["id"], "u-locked", key="locked-1", lock=lock),
    ]
    worker = await _deliver(platform, [g.model_dump(mode="json") for g in [*coupons, *others]])
    assert (worker.jobs_complete, worker.jobs_failed) == (1, 0)

    written = await _written(platform)
    by_key = {r.grant_key: r for r in written["records"]}
    assert set(by_key) == {g.grant_key for g in [*coupons, *others]}
    moves: dict[uuid.UUID, list[tuple[str | None, str, str]]] = {}
    for move in written["moves"]:  # in order of ids
        moves.setdefault(move.record_id, []).append((move.from_status, move.to_status, move.action))
    wallet = {c.record_id: c for c in written["coupons"]}
    assert len(wallet) == len(written["coupons"]) == len(coupons)
    messages: dict[str, list[dict[str, Any]]] = {}
    for message in written["messages"]:
        for change in items_of(message.payload):  # a transaction's changes leave bundled
            messages.setdefault(change["record_id"], []).append(change)
        assert message.queue == "activity" and message.job_id == str(message.id)

    for g in coupons:
        record = by_key[g.grant_key]
        assert (record.status, record.version, record.issued_to) == ("issued", 3, g.user_id)
        assert moves[record.id] == _COUPON_MOVES
        entry = wallet[record.id]
        assert (entry.tenant_id, entry.user_id, entry.status) == ("tenant-a", g.user_id, "unused")
        assert entry.title == COUPON["title"] and entry.coupon_type == "market_data"
        assert len(entry.code) == CODE_LENGTH and set(entry.code) <= set(CODE_ALPHABET)
        [message] = messages[str(record.id)]
        assert (message["from_status"], message["to_status"]) == (None, "issued")
        assert (message["record_number"], message["record_version"]) == (record.number, 3)
        assert message["grant_key"] == g.grant_key
    assert len({c.code for c in written["coupons"]}) == len(coupons)

    cash_record, locked = by_key["cash-1"], by_key["locked-1"]
    assert cash_record.status == "issuing" and moves[cash_record.id] == _COUPON_MOVES[:2]
    assert [m["to_status"] for m in messages[str(cash_record.id)]] == ["issuing"]
    assert locked.status == "locked" and moves[locked.id] == [(None, "locked", "create")]
    assert locked.lock_amount == Decimal("1000") and locked.lock_days == 30
    assert [m["to_status"] for m in messages[str(locked.id)]] == ["locked"]
    assert locked.activity_names is None and locked.prize_title == COUPON["title"]


async def test_a_grant_failing_for_good_leaves_nothing_and_the_others_are_recorded(
    platform: Platform,
) -> None:
    """The delivery is handled again grant by grant, each in its savepoint: the rows of the
    first, whole try went with its rollback, the good grants' rows are written once, the
    bad grant's not at all; sent again, the delivery writes nothing new."""
    prize = await coupon_prize(platform)
    good = [grant(prize["id"], f"u-{i}", key=f"g-{i}") for i in range(4)]
    bad = grant(str(uuid.uuid4()), "u-bad", key="g-bad")  # names no prize
    payloads = [g.model_dump(mode="json") for g in [*good[:2], bad, *good[2:]]]
    worker = await _deliver(platform, payloads)
    assert worker.jobs_failed == 1

    written = await _written(platform)
    records = {r.grant_key: r.id for r in written["records"]}
    assert sorted(records) == sorted(g.grant_key for g in good)
    assert len(written["moves"]) == 3 * len(good)
    assert {m.record_id for m in written["moves"]} == set(records.values())
    assert sorted(c.record_id for c in written["coupons"]) == sorted(records.values())
    assert sorted(
        c["record_id"] for m in written["messages"] for c in items_of(m.payload)
    ) == sorted(str(i) for i in records.values())

    again = await _deliver(platform, [g.model_dump(mode="json") for g in good])
    assert (again.jobs_complete, again.jobs_failed) == (1, 0)
    after = await _written(platform)
    assert {k: len(after[k]) for k in after} == {k: len(written[k]) for k in written}


async def test_numbers_are_drawn_by_the_insert_in_key_order_and_outgrow_eight_digits(
    platform: Platform,
) -> None:
    """The insert draws each record's number from the sequence, in the order its rows go
    in (by grant key), padded to eight digits and never cut past them."""
    prize = await coupon_prize(platform)
    async with platform.db("reward").session() as session:
        await session.execute(text("SELECT setval('reward_record_number_seq', 99999998)"))
    grants = [grant(prize["id"], f"u-{i}", key=f"k-{i}") for i in (2, 0, 1)]
    worker = await _deliver(platform, [g.model_dump(mode="json") for g in grants])
    assert (worker.jobs_complete, worker.jobs_failed) == (1, 0)
    written = await _written(platform)
    numbers = {r.grant_key: r.number for r in written["records"]}
    day = platform.clock.now()
    assert numbers == {
        "k-0": format_number(99999999, day),
        "k-1": format_number(100000000, day),
        "k-2": format_number(100000001, day),
    }
    assert numbers["k-1"].endswith("-100000000")
    assert sorted(
        c["record_number"] for m in written["messages"] for c in items_of(m.payload)
    ) == sorted(numbers.values())
