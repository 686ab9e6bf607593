"""The activity service application."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from activity_service.activities.endpoints import me_router as my_activities_router
from activity_service.activities.endpoints import router as activities_router
from activity_service.config import ActivitySettings
from activity_service.db import IdempotencyKey, SandboxClock
from activity_service.evaluation.endpoints import inviters_router
from activity_service.evaluation.endpoints import router as evaluation_router
from activity_service.events.db import close_ingest_pool, open_ingest_pool
from activity_service.events.endpoints import router as events_router
from activity_service.events.endpoints import users_router as event_users_router
from activity_service.progress.endpoints import router as positions_router
from activity_service.sandbox.endpoints import router as sandbox_router
from activity_service.segments.endpoints import router as segments_router
from activity_service.stats.endpoints import router as stats_router
from activity_service.teams.endpoints import activity_teams_router
from activity_service.teams.endpoints import router as teams_router
from activity_service.tenants.endpoints import router as tenants_router
from service_kit.app_factory import create_service_app
from service_kit.clock import Clock


def create_app(
    settings: ActivitySettings | None = None,
    *,
    clock: Clock | None = None,
    http_mounts: dict[str, httpx.AsyncBaseTransport] | None = None,
) -> FastAPI:
    return create_service_app(
        title="Activity Platform — activity service",
        description="Activities, segments, business events, teams and the evaluation engine "
        "(SPEC §1).",
        settings=settings or ActivitySettings(),
        idempotency_model=IdempotencyKey,
        routers=[
            # First: a request is matched against the routes in order, and event ingestion
            # is the hot path (matching it last cost a busy API a twentieth of its time).
            events_router,
            activities_router,
            my_activities_router,
            segments_router,
            event_users_router,
            evaluation_router,
            stats_router,
            inviters_router,
            positions_router,
            tenants_router,
            activity_teams_router,
            teams_router,
            sandbox_router,
        ],
        clock=clock,
        http_mounts=http_mounts,
        sandbox_model=SandboxClock,
        on_startup=open_ingest_pool,
        on_shutdown=close_ingest_pool,
    )
