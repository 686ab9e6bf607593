"""Reward service fixtures: the reference cash system mounted for the reward worker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, text

from activity_platform.reference_cash import CashPayment, CashSettings
from activity_platform.reference_cash import create_app as create_cash_app
from service_kit.db import Database
from tests.infra import Infra, drop_databases
from tests.service.harness import Platform

CASH_URL = "http://cash.test"
CASH_PAYMENTS_URL = f"{CASH_URL}/v1/payments"
CASH_LIMIT = Decimal("5000")
BLOCKED_USER = "u-blocked"


@dataclass
class CashSystem:
    app: FastAPI

    @property
    def db(self) -> Database:
        return self.app.state.db

    def unavailable_next(self, n: int) -> None:
        self.app.state.unavailable_next = n

    def lose_next_answers(self, n: int) -> None:
        self.app.state.lost_next = n

    async def payments(self) -> list[CashPayment]:
        async with self.db.session() as session:
            return list((await session.scalars(select(CashPayment))).all())

    async def count(self) -> int:
        async with self.db.session() as session:
            return int(await session.scalar(select(func.count()).select_from(CashPayment)) or 0)


@pytest.fixture(scope="session")
async def cash_session(infra: Infra, platform_session: Platform) -> AsyncIterator[CashSystem]:
    url = infra.db_url("cash")
    app = create_cash_app(
        CashSettings(
            database_url=url, refuse_amount_over=CASH_LIMIT, refuse_user_ids=[BLOCKED_USER]
        )
    )
    async with app.router.lifespan_context(app):
        platform_session.mounts[CASH_URL] = httpx.ASGITransport(app=app)
        yield CashSystem(app)
        platform_session.mounts.pop(CASH_URL, None)
    await drop_databases(infra, {"cash": url})


@pytest.fixture
async def cash(cash_session: CashSystem, platform: Platform) -> CashSystem:
    async with cash_session.db.engine.begin() as conn:
        await conn.execute(text("TRUNCATE cash_payments"))
    cash_session.unavailable_next(0)
    cash_session.lose_next_answers(0)
    return cash_session
