"""Stats fixtures: the reference cash system, so cash rewards are really paid (and refused)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from activity_platform.reference_cash import CashSettings
from activity_platform.reference_cash import create_app as create_cash_app
from tests.infra import Infra, drop_databases
from tests.service.harness import Platform

CASH_URL = "http://stats-cash.test"
BLOCKED_USER = "u-blocked"


@pytest.fixture(scope="session")
async def stats_cash_session(infra: Infra, platform_session: Platform) -> AsyncIterator[FastAPI]:
    url = infra.db_url("stats_cash")
    app = create_cash_app(CashSettings(database_url=url, refuse_user_ids=[BLOCKED_USER]))
    async with app.router.lifespan_context(app):
        platform_session.mounts[CASH_URL] = httpx.ASGITransport(app=app)
        yield app
        platform_session.mounts.pop(CASH_URL, None)
    await drop_databases(infra, {"cash": url})


@pytest.fixture
async def stats_cash(stats_cash_session: FastAPI, platform: Platform) -> str:
    """The cash system's payment URL, configured as the tenant's payout endpoint."""
    async with stats_cash_session.state.db.engine.begin() as conn:
        await conn.execute(text("TRUNCATE cash_payments"))
    response = await platform.reward.put(
        "/v1/payout-endpoint",
        json={"url": f"{CASH_URL}/v1/payments"},
        headers=platform.operator(),
    )
    assert response.status_code == 200, response.text
    return f"{CASH_URL}/v1/payments"
