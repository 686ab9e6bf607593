"""The referral service application."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from referral_service.bindings.endpoints import router as bindings_router
from referral_service.config import ReferralSettings
from referral_service.db import IdempotencyKey, SandboxClock
from referral_service.invite_codes.endpoints import router as invite_codes_router
from referral_service.sandbox.endpoints import router as sandbox_router
from referral_service.tenant_settings.endpoints import router as settings_router
from service_kit.app_factory import create_service_app
from service_kit.clock import Clock


def create_app(
    settings: ReferralSettings | None = None,
    *,
    clock: Clock | None = None,
    http_mounts: dict[str, httpx.AsyncBaseTransport] | None = None,
) -> FastAPI:
    return create_service_app(
        title="Activity Platform — referral service",
        description="Invite codes and the referral graph: bindings per node (SPEC §2).",
        settings=settings or ReferralSettings(),
        idempotency_model=IdempotencyKey,
        routers=[invite_codes_router, bindings_router, settings_router, sandbox_router],
        clock=clock,
        http_mounts=http_mounts,
        sandbox_model=SandboxClock,
    )
