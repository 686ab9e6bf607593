"""Messages of the jobs declared ``bundle_when_flushed`` leave a unit of work bundled per
queue, job name and tenant; each item keeps the request that caused it; what a rolled-back
savepoint added is in no bundle; other messages, and a lone one, leave as they are."""

from __future__ import annotations

from sqlalchemy import select

from contracts import jobs
from reward_service.db import OutboxMessage
from service_kit.correlation import bound, request_id_var
from service_kit.outbox import OutboxRepository
from service_kit.outbox.bundles import MAX_BUNDLED_ITEMS, items_of
from tests.service.harness import Platform

STATUS = jobs.ACTIVITY_RECORD_STATUS_CHANGED


def _change(tenant: str, n: int) -> dict[str, str]:
    return {"tenant_id": tenant, "grant_key": f"g-{tenant}-{n}", "to_status": "issued"}


async def _rows(platform: Platform) -> list[OutboxMessage]:
    async with platform.db("reward").session() as session:
        found = await session.scalars(select(OutboxMessage).order_by(OutboxMessage.created_at))
        return list(found.all())


async def test_a_units_messages_leave_in_bundles_per_tenant_each_item_with_its_request(
    platform: Platform,
) -> None:
    count = MAX_BUNDLED_ITEMS + 5
    async with platform.db("reward").session() as session:
        outbox = OutboxRepository.from_session(session, OutboxMessage)
        for n in range(count):
            with bound(request_id_var, f"req-{n}"):
                outbox.add("activity", STATUS, _change("tenant-a", n), job_id=f"s-{n}")
        outbox.add("activity", STATUS, _change("tenant-b", 0))
        outbox.add("activity", STATUS, _change("tenant-b", 1))
        for n in range(3):
            outbox.add("reward", jobs.REWARD_ISSUE, {"tenant_id": "tenant-a", "record_id": str(n)})

    rows = await _rows(platform)
    status = [r for r in rows if r.job_name == STATUS]
    by_tenant: dict[str, list[int]] = {}
    for row in status:
        by_tenant.setdefault(row.payload["tenant_id"], []).append(len(items_of(row.payload)))
    assert sorted(by_tenant["tenant-a"]) == [5, MAX_BUNDLED_ITEMS]
    assert by_tenant["tenant-b"] == [2]
    items = [item for row in status for item in items_of(row.payload)]
    assert sorted(i["grant_key"] for i in items if i["tenant_id"] == "tenant-a") == sorted(
        f"g-tenant-a-{n}" for n in range(count)
    )
    assert {i["grant_key"]: i.get("_meta", {}).get("request_id") for i in items}[
        "g-tenant-a-7"
    ] == "req-7"
    assert all(r.job_id.endswith(f"+{len(items_of(r.payload))}") for r in status)
    issues = [r for r in rows if r.job_name == jobs.REWARD_ISSUE]
    assert len(issues) == 3 and all("items" not in r.payload for r in issues)


async def test_a_rolled_back_savepoints_message_is_in_no_bundle_and_a_lone_one_stays_itself(
    platform: Platform,
) -> None:
    async with platform.db("reward").session() as session:
        outbox = OutboxRepository.from_session(session, OutboxMessage)
        outbox.add("activity", STATUS, _change("tenant-a", 0))
        outbox.add("activity", STATUS, _change("tenant-a", 1))
        try:
            async with session.begin_nested():  # flushes 0 and 1: a bundle
                outbox.add("activity", STATUS, _change("tenant-a", 2))
                raise RuntimeError("undo")
        except RuntimeError:
            pass
        outbox.add("activity", STATUS, _change("tenant-a", 3))
        outbox.add("activity", STATUS, _change("tenant-b", 0))

    rows = await _rows(platform)
    assert sorted([i["grant_key"] for i in items_of(r.payload)] for r in rows) == [
        ["g-tenant-a-0", "g-tenant-a-1"],
        ["g-tenant-a-3"],
        ["g-tenant-b-0"],
    ]
    assert sum("items" in r.payload for r in rows) == 1  # the lone ones are themselves
