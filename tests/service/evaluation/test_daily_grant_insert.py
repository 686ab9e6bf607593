"""The daily run's grant insert sends its text columns as one string each, split in
PostgreSQL: every value arrives as it was, a missing app as null, and values that hold the
separators themselves (or an empty column) go as arrays instead, with the same rows. The
grants' ids are time-ordered (UUID version 7), numbered in the insert's order."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

from sqlalchemy import text

from activity_service.evaluation.daily_repository import (
    DailyRunRepository,
    NewGrant,
    NewGrants,
    _id_base,
    _joined,
)
from contracts import jobs
from contracts.payloads import grants_of_message
from tests.service.harness import Platform


def test_a_column_is_joined_with_nulls_marked() -> None:
    assert _joined(["a", None, "b"]) == "a\x1f\x1e\x1fb"
    assert _joined(["", "x"]) == "\x1fx"


def test_a_column_that_cannot_be_joined_is_not() -> None:
    assert _joined(["a\x1fb", "c"]) is None  # a value holds the separator
    assert _joined(["a\x1e", "c"]) is None  # … or the null mark
    assert _joined([""]) is None  # one empty value: split, it would be no value at all


def test_ids_are_time_ordered_and_differ_between_inserts() -> None:
    before = time.time_ns() // 1_000_000
    bases = [_id_base() for _ in range(200)]
    after = time.time_ns() // 1_000_000
    assert len(set(bases)) == 200
    for head, tail in bases:
        assert len(head) == 16 and before <= int(head[:12], 16) <= after and head[12] == "7"
        # the tail, as a bigint, is negative (to_hex writes 16 digits) with variant bits 10,
        # and stays so after numbering a chunk's rows from it
        assert -(1 << 63) <= tail < 0 and (tail + (1 << 64)) >> 62 == 0b10
        assert (tail + 100_000 + (1 << 64)) >> 62 == 0b10
        ids = [uuid.UUID(head + f"{tail + n + (1 << 64):016x}") for n in (1, 2, 1000)]
        assert ids == sorted(ids) and all(i.version == 7 for i in ids)


async def _insert(platform: Platform, users: list[str], apps: list[str | None]) -> list[dict]:
    activity_id = uuid.uuid4()
    prize_id = str(uuid.uuid4())
    at = datetime(2026, 12, 30, 2, tzinfo=UTC)
    grants = NewGrants(
        tenant_id="tenant-a",
        activity_id=activity_id,
        activity_code="ACT-1",
        new_user_reward=False,
        templates=[
            {"rule_id": "r1", "prize_id": prize_id},
            {"rule_id": "r2", "prize_id": prize_id},
        ],
        rows=[
            NewGrant(f"{activity_id}:r{n % 2 + 1}:{user}:-:once", user, app, n % 2, "net", at)
            for n, (user, app) in enumerate(zip(users, apps, strict=True))
        ],
    )
    async with platform.db("activity").session() as session:
        repo = DailyRunRepository.from_session(session)
        inserted = await repo.insert_grants(grants, "reward", jobs.REWARD_CREATE_FROM_GRANT)
        stored = (
            await session.execute(
                text(
                    "SELECT grant_key, user_id, rule_id, task FROM grants "
                    "WHERE activity_id = :a ORDER BY grant_key"
                ),
                {"a": activity_id},
            )
        ).all()
        by_id = (
            await session.execute(
                text("SELECT id, grant_key FROM grants WHERE activity_id = :a ORDER BY id"),
                {"a": activity_id},
            )
        ).all()
        messages = (
            await session.execute(
                text("SELECT payload FROM outbox_messages WHERE job_id LIKE :k"),
                {"k": f"grants:{activity_id}%"},
            )
        ).scalars()
        announced = [g for payload in messages for g in grants_of_message(payload)]
        await session.rollback()
    assert inserted == {r.grant_key for r in grants.rows}
    # ids in the order of the rows, each a version 7 UUID of this millisecond or so
    assert [key for _, key in by_id] == [r.grant_key for r in grants.rows]
    assert all(i.version == 7 and i.variant == uuid.RFC_4122 for i, _ in by_id)
    assert sorted(stored) == sorted(
        (r.grant_key, r.user_id, f"r{r.rule_index + 1}", "net") for r in grants.rows
    )
    return sorted(announced, key=lambda g: g["grant_key"])


async def test_joined_columns_arrive_as_they_were(platform: Platform) -> None:
    announced = await _insert(platform, ["u1", "u2", "", "u 4"], ["app", None, "", "app"])
    assert len(announced) == 4
    assert {(g["user_id"], g["app_id"], g["rule_id"]) for g in announced} == {
        ("u1", "app", "r1"),
        ("u2", None, "r2"),
        ("", "", "r1"),
        ("u 4", "app", "r2"),
    }


async def test_values_holding_a_separator_go_as_arrays(platform: Platform) -> None:
    announced = await _insert(platform, ["u\x1f1", "u\x1e2"], [None, "a\x1fb"])
    assert {(g["user_id"], g["app_id"]) for g in announced} == {
        ("u\x1f1", None),
        ("u\x1e2", "a\x1fb"),
    }


async def test_one_grant_with_empty_values_goes_as_arrays(platform: Platform) -> None:
    announced = await _insert(platform, ["u1"], [""])
    assert [(g["user_id"], g["app_id"]) for g in announced] == [("u1", "")]
