"""The reward service application."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from reward_service.center.endpoints import router as center_router
from reward_service.config import RewardSettings
from reward_service.db import IdempotencyKey, SandboxClock
from reward_service.payouts.endpoints import router as payouts_router
from reward_service.prizes.endpoints import router as prizes_router
from reward_service.records.endpoints import router as records_router
from reward_service.sandbox.endpoints import router as sandbox_router
from reward_service.shipments.endpoints import router as shipments_router
from reward_service.wallet.endpoints import router as wallet_router
from service_kit.app_factory import create_service_app
from service_kit.clock import Clock


def create_app(
    settings: RewardSettings | None = None,
    *,
    clock: Clock | None = None,
    http_mounts: dict[str, httpx.AsyncBaseTransport] | None = None,
) -> FastAPI:
    return create_service_app(
        title="Activity Platform — reward service",
        description="Prizes, reward records and their state machine, the reward center, "
        "wallets, shipments and cash payouts (SPEC §3).",
        settings=settings or RewardSettings(),
        idempotency_model=IdempotencyKey,
        routers=[
            prizes_router,
            records_router,
            center_router,
            wallet_router,
            shipments_router,
            payouts_router,
            sandbox_router,
        ],
        clock=clock,
        http_mounts=http_mounts,
        sandbox_model=SandboxClock,
    )
