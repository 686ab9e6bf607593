"""The events history partitioned by month of arrival: the conversion of an existing table,
event ids idempotent across months, partitions created ahead (rows that fell in the
default partition moved into their month), and the retention dropping whole months."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from activity_service.config import ActivitySettings
from activity_service.events.history import events_table, keep_history
from activity_service.events.tasks import CRON_JOBS, keep_events_history
from service_kit.clock import FrozenClock
from service_kit.migrations import downgrade, ensure_database, upgrade
from service_kit.partitions import maintain, month_start
from service_kit.partitions.rules import add_months, bounds, partition_name
from tests.infra import Infra, drop_databases
from tests.service.evaluation.steps import event, money
from tests.service.harness import Platform

BEFORE_PARTITIONING = "32c7de763755"


def now() -> datetime:
    # received_at is the database server's clock, not the platform's test clock.
    return datetime.now(UTC)


def months_ago(count: int) -> datetime:
    return bounds(add_months(month_start(now()), -count))[0] + timedelta(days=3)


async def sql(platform: Platform, statement: str, **params: Any) -> list[Any]:
    async with platform.db("activity").session() as session:
        result = await session.execute(text(statement), params)
        return list(result.all()) if result.returns_rows else []


async def store_old_event(platform: Platform, body: dict[str, Any], received_at: datetime) -> None:
    """An event as it was stored months ago (ingestion always stamps the current time)."""
    async with platform.db("activity").session() as session:
        await maintain(session, events_table(ActivitySettings()), received_at)
    await sql(
        platform,
        "INSERT INTO event_keys (tenant_id, event_id, received_at) VALUES ('tenant-a', :id, :at)",
        id=body["event_id"],
        at=received_at,
    )
    await sql(
        platform,
        "INSERT INTO events (id, tenant_id, event_id, type, user_id, app_id, occurred_at, "
        "payload, received_by, received_at) VALUES (gen_random_uuid(), 'tenant-a', :id, :type, "
        ":user, :app, :occurred, CAST(:payload AS jsonb), 'broker-backend', :at)",
        id=body["event_id"],
        type=body["type"],
        user=body["user_id"],
        app=body.get("app_id", "broker-app"),
        occurred=datetime.fromisoformat(body["occurred_at"]),
        payload=json.dumps(body),
        at=received_at,
    )


async def partition_of(platform: Platform, event_id: str) -> str:
    rows = await sql(
        platform,
        "SELECT tableoid::regclass::text FROM events WHERE event_id = :id",
        id=event_id,
    )
    assert len(rows) == 1, rows
    return str(rows[0][0])


async def test_a_new_event_lands_in_the_partition_of_its_arrival_month(
    platform: Platform,
) -> None:
    body = event("user.registered", "u1", "2020-01-05T00:00:00+00:00")  # business time: old
    response = await platform.activity.post("/v1/events", json=body, headers=platform.service())
    assert response.status_code == 202
    assert await partition_of(platform, body["event_id"]) == partition_name(
        "events", month_start(now())
    )
    keys = await sql(platform, "SELECT tenant_id, event_id FROM event_keys")
    assert keys == [("tenant-a", body["event_id"])]


async def test_an_event_id_of_an_earlier_month_stays_a_duplicate(platform: Platform) -> None:
    body = money("cash.deposited", "u1", "2026-09-01T00:00:00+00:00", "100", "USD")
    await store_old_event(platform, body, months_ago(2))
    assert await partition_of(platform, body["event_id"]) == partition_name(
        "events", month_start(months_ago(2))
    )

    again = await platform.activity.post("/v1/events", json=body, headers=platform.service())
    assert again.status_code == 202 and again.json()["status"] == "duplicate", again.text
    changed = {**body, "amount": "200"}
    conflict = await platform.activity.post("/v1/events", json=changed, headers=platform.service())
    assert conflict.status_code == 409 and conflict.json()["code"] == "event_id_conflict"
    batch = await platform.activity.post(
        "/v1/events/batch",
        json={"events": [body, event("user.registered", "u2", "2026-09-01T00:00:00+00:00")]},
        headers=platform.service(),
    )
    assert batch.status_code in (200, 207), batch.text
    statuses = [item["status"] for item in batch.json()["items"]]
    assert statuses == ["duplicate", "accepted"], batch.json()
    assert (await sql(platform, "SELECT count(*) FROM events"))[0][0] == 2
    assert (await sql(platform, "SELECT count(*) FROM event_keys"))[0][0] == 2


async def test_concurrent_posts_of_one_event_store_it_once(platform: Platform) -> None:
    body = event("user.registered", "u-race", "2026-11-01T00:00:00+00:00")
    answers = await asyncio.gather(
        *(
            platform.activity.post("/v1/events", json=body, headers=platform.service())
            for _ in range(8)
        )
    )
    statuses = sorted(a.json().get("status", a.json().get("code")) for a in answers)
    assert statuses.count("accepted") == 1, statuses
    assert set(statuses) <= {"accepted", "duplicate", "event_in_flight"}, statuses
    assert (await sql(platform, "SELECT count(*) FROM events"))[0][0] == 1
    # The follow-ups of one stored event (evaluation, and referral for a registration).
    messages = await sql(platform, "SELECT count(*), count(DISTINCT job_id) FROM outbox_messages")
    assert messages == [(2, 2)]


async def test_partitions_are_created_ahead_and_the_default_emptied(platform: Platform) -> None:
    far = add_months(month_start(now()), 7)
    at = bounds(far)[0] + timedelta(hours=5)
    # No partition for that month yet: the row is kept in the default partition.
    await sql(
        platform,
        "INSERT INTO events (id, tenant_id, event_id, type, user_id, app_id, occurred_at, "
        "payload, received_by, received_at) VALUES (gen_random_uuid(), 'tenant-a', 'late', "
        "'user.registered', 'u1', 'broker-app', :at, '{}'::jsonb, 'x', :at)",
        at=at,
    )
    assert (await sql(platform, "SELECT count(*) FROM events_default"))[0][0] == 1

    settings = ActivitySettings(history_partitions_ahead=2)
    done = await keep_history(platform.db("activity"), settings, at)
    assert done.created == 3 and done.dropped == 0
    assert await partition_of(platform, "late") == partition_name("events", far)
    assert (await sql(platform, "SELECT count(*) FROM events_default"))[0][0] == 0
    # A second pass finds nothing to do.
    assert (await keep_history(platform.db("activity"), settings, at)).created == 0


async def test_retention_drops_whole_months_and_forgets_their_ids(platform: Platform) -> None:
    old = money("cash.deposited", "u1", "2026-05-01T00:00:00+00:00", "10", "USD")
    kept = money("cash.deposited", "u1", "2026-06-01T00:00:00+00:00", "20", "USD")
    await store_old_event(platform, old, months_ago(4))
    await store_old_event(platform, kept, months_ago(1))
    fresh = event("user.registered", "u2", "2026-11-01T00:00:00+00:00")
    await platform.activity.post("/v1/events", json=fresh, headers=platform.service())

    settings = ActivitySettings(history_retention_months=1)
    done = await keep_history(platform.db("activity"), settings, now())
    assert done.dropped == 3  # four, three and two months ago (created by store_old_event)
    assert done.keys_forgotten == 1
    names = {
        name
        for (name,) in await sql(
            platform,
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'events'::regclass",
        )
    }
    assert partition_name("events", month_start(months_ago(4))) not in names
    assert partition_name("events", month_start(months_ago(1))) in names
    left = {row[0] for row in await sql(platform, "SELECT event_id FROM events")}
    assert left == {kept["event_id"], fresh["event_id"]}
    keys = {row[0] for row in await sql(platform, "SELECT event_id FROM event_keys")}
    assert keys == left


async def test_the_cron_job_runs_the_pass_with_the_worker_settings(platform: Platform) -> None:
    assert [job.name for job in CRON_JOBS] == ["events.history.cron"]
    ctx = {
        "db": platform.db("activity"),
        "settings": ActivitySettings(history_partitions_ahead=4),
        "clock": FrozenClock(now()),
    }
    # The migration made three months ahead; the fourth is new.
    assert await keep_events_history(ctx) == 1
    assert await keep_events_history(ctx) == 0


@pytest.fixture
async def bare_database(infra: Infra) -> AsyncIterator[str]:
    url = infra.db_url("activity", "_partitioning")
    await ensure_database(url)
    yield url
    await drop_databases(infra, {"activity": url})


async def test_the_migration_converts_an_existing_table(bare_database: str) -> None:
    await asyncio.to_thread(upgrade, "activity", bare_database, BEFORE_PARTITIONING)
    engine = create_async_engine(bare_database)
    received = [datetime(2026, 1, 10, tzinfo=UTC), datetime(2026, 6, 30, 23, tzinfo=UTC), now()]
    try:
        async with engine.begin() as conn:
            for i, at in enumerate(received):
                await conn.execute(
                    text(
                        "INSERT INTO events (id, tenant_id, event_id, type, user_id, app_id, "
                        "occurred_at, payload, received_by, received_at) VALUES "
                        "(gen_random_uuid(), 't', :id, 'user.registered', 'u', 'a', :at, "
                        "'{}'::jsonb, 'x', :at)"
                    ),
                    {"id": f"e{i}", "at": at},
                )
        await asyncio.to_thread(upgrade, "activity", bare_database, "head")
        async with engine.begin() as conn:
            rows = (
                await conn.execute(
                    text("SELECT event_id, tableoid::regclass::text FROM events ORDER BY 1")
                )
            ).all()
            assert rows == [
                ("e0", "events_p202601"),
                ("e1", "events_p202606"),
                ("e2", partition_name("events", month_start(now()))),
            ]
            keys = (await conn.execute(text("SELECT count(*) FROM event_keys"))).scalar()
            assert keys == 3
            # Every month from the oldest row to three ahead, and the safety net.
            parts = set(
                (
                    await conn.execute(
                        text(
                            "SELECT c.relname FROM pg_inherits i "
                            "JOIN pg_class c ON c.oid = i.inhrelid "
                            "WHERE i.inhparent = 'events'::regclass"
                        )
                    )
                ).scalars()
            )
            assert "events_default" in parts
            assert partition_name("events", add_months(month_start(now()), 3)) in parts
            assert "events_p202603" in parts
        await asyncio.to_thread(downgrade, "activity", bare_database, BEFORE_PARTITIONING)
        async with engine.begin() as conn:
            count = (await conn.execute(text("SELECT count(*) FROM events"))).scalar()
            assert count == 3
            kind = (
                await conn.execute(
                    text("SELECT relkind::text FROM pg_class WHERE relname = 'events'")
                )
            ).scalar()
            assert kind == "r"
        await asyncio.to_thread(upgrade, "activity", bare_database, "head")
    finally:
        await engine.dispose()
