"""Idempotency-Keys expire: after ``IDEMPOTENCY_KEY_RETENTION_HOURS`` (24) a key may name a
new request, and every service's worker deletes expired keys hourly, in batches."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import text

from activity_platform.services import SERVICES
from service_kit.idempotency.expiry import EXPIRE_JOB, expire_keys
from tests.service.harness import Platform

PRIZE = {
    "type": "coupon",
    "name": "30-day market data",
    "coupon_type": "market_data",
    "title": {"en": "Market data card"},
    "validity": {"days_from_issue": 30},
}
DAY = timedelta(hours=24)


def _model(service: str) -> Any:
    return __import__(f"{SERVICES[service].module}.db", fromlist=["IdempotencyKey"]).IdempotencyKey


async def _insert_keys(platform: Platform, service: str, ages_hours: dict[str, float]) -> None:
    """Keys of two tenants, each ``ages_hours[key]`` old."""
    async with platform.db(service).engine.begin() as conn:
        for i, (key, hours) in enumerate(ages_hours.items()):
            await conn.execute(
                text(
                    "INSERT INTO idempotency_keys (tenant_id, caller, key, fingerprint, "
                    "status_code, headers, body, created_at) VALUES (:t, 'operator:ops-1', :k, "
                    "'f', 201, '{}', 'x', now() - make_interval(secs => :s))"
                ),
                {"t": f"tenant-{'ab'[i % 2]}", "k": key, "s": hours * 3600},
            )


async def _keys(platform: Platform, service: str) -> set[str]:
    async with platform.db(service).engine.connect() as conn:
        rows = await conn.execute(text("SELECT key FROM idempotency_keys"))
        return {r[0] for r in rows}


@pytest.mark.parametrize("service", list(SERVICES))
async def test_expired_keys_are_deleted_in_batches_and_fresh_ones_kept(
    platform: Platform, service: str
) -> None:
    expired = {f"old-{i}": 24.5 + i for i in range(5)}
    fresh = {"new-1": 0.0, "new-2": 23.5}
    await _insert_keys(platform, service, {**expired, **fresh})
    # batches of 2: three statements for the five expired keys, in both tenants
    deleted = await expire_keys(platform.db(service), _model(service), DAY, batch_size=2)
    assert deleted == 5
    assert await _keys(platform, service) == set(fresh)
    # nothing left to do: a second run deletes nothing
    assert await expire_keys(platform.db(service), _model(service), DAY, batch_size=2) == 0
    assert await _keys(platform, service) == set(fresh)


@pytest.mark.parametrize("service", list(SERVICES))
async def test_every_worker_runs_the_hourly_expiry_with_the_setting(
    platform: Platform, service: str
) -> None:
    settings = platform.settings[service]
    worker = SERVICES[service].create_worker(settings=settings, clock=platform.clock, burst=True)
    try:
        (job,) = [c for c in worker.cron_jobs if c.name.endswith(f"{EXPIRE_JOB}.cron")]
    finally:
        await worker.close()
    assert job.unique and not job.run_at_startup
    await _insert_keys(platform, service, {"k-3h": 3, "k-30h": 30, "k-1h": 1})
    original = settings.idempotency_key_retention_hours
    settings.idempotency_key_retention_hours = 2
    try:
        deleted = await job.coroutine({"settings": settings, "db": platform.db(service)})
    finally:
        settings.idempotency_key_retention_hours = original
    assert deleted == 2
    assert await _keys(platform, service) == {"k-1h"}


async def test_an_expired_key_names_a_new_request(platform: Platform) -> None:
    headers = {**platform.operator(), "Idempotency-Key": "k1"}
    first = await platform.reward.post("/v1/prizes", json=PRIZE, headers=headers)
    assert first.status_code == 201, first.text
    other = {**PRIZE, "name": "another"}
    refused = await platform.reward.post("/v1/prizes", json=other, headers=headers)
    assert refused.status_code == 422 and refused.json()["code"] == "idempotency_key_reused"
    # a day later the key is free: the other request is made, not replayed, not refused
    async with platform.db("reward").engine.begin() as conn:
        await conn.execute(
            text("UPDATE idempotency_keys SET created_at = now() - interval '24 hours 1 minute'")
        )
    taken = await platform.reward.post("/v1/prizes", json=other, headers=headers)
    assert taken.status_code == 201, taken.text
    assert "Idempotent-Replayed" not in taken.headers
    assert taken.json()["id"] != first.json()["id"]
    # and it now answers for the new request
    again = await platform.reward.post("/v1/prizes", json=other, headers=headers)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == taken.json()["id"]


async def test_a_shorter_retention_frees_keys_sooner(platform: Platform) -> None:
    settings = platform.settings["reward"]
    headers = {**platform.operator(), "Idempotency-Key": "k1"}
    assert (await platform.reward.post("/v1/prizes", json=PRIZE, headers=headers)).is_success
    async with platform.db("reward").engine.begin() as conn:
        await conn.execute(text("UPDATE idempotency_keys SET created_at = now() - interval '2h'"))
    other = {**PRIZE, "name": "another"}
    # with the default 24 hours the key still holds
    refused = await platform.reward.post("/v1/prizes", json=other, headers=headers)
    assert refused.status_code == 422
    original = settings.idempotency_key_retention_hours
    settings.idempotency_key_retention_hours = 1
    try:
        taken = await platform.reward.post("/v1/prizes", json=other, headers=headers)
    finally:
        settings.idempotency_key_retention_hours = original
    assert taken.status_code == 201, taken.text


async def test_a_key_being_taken_over_is_skipped_not_waited_for(platform: Platform) -> None:
    await _insert_keys(platform, "reward", {"busy": 30, "idle": 30})
    db = platform.db("reward")
    async with db.engine.connect() as holder:
        trans = await holder.begin()
        # a request taking over the expired key holds its row until it commits
        await holder.execute(text("SELECT 1 FROM idempotency_keys WHERE key='busy' FOR UPDATE"))
        deleted = await asyncio.wait_for(expire_keys(db, _model("reward"), DAY), timeout=10)
        assert deleted == 1
        assert await _keys(platform, "reward") == {"busy"}
        await trans.rollback()
    assert await expire_keys(db, _model("reward"), DAY) == 1
    assert await _keys(platform, "reward") == set()


def test_the_retention_is_at_least_an_hour() -> None:
    with pytest.raises(ValidationError):
        SERVICES["reward"].settings(idempotency_key_retention_hours=0)
    with pytest.raises(ValidationError):
        SERVICES["reward"].settings(idempotency_key_retention_hours=-5)
    assert SERVICES["reward"].settings().idempotency_key_retention_hours == 24
