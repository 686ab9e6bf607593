"""PostgreSQL or Redis down: every service starts with one clear log line per dependency,
answers 503 problem+json with ``Retry-After`` on routes that need them, says 503 on
``/readyz``, and keeps the client's HTTP connection open."""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from activity_platform.embedded import free_port
from activity_platform.services import SERVICES
from tests.service.harness import ALL_OPERATOR_PERMISSIONS, token

EVENT = {
    "event_id": "reg-bob",
    "type": "user.registered",
    "user_id": "bob",
    "app_id": "broker-app",
    "occurred_at": "2026-11-23T02:00:00Z",
}


def _unreachable_app(service: str) -> FastAPI:
    """The service's real app, its database and Redis on ports where nothing listens."""
    settings = SERVICES[service].settings(
        database_url=f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/{service}",
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
    )
    app: FastAPI = SERVICES[service].create_app(settings=settings)
    return app


def _headers(app: FastAPI, kind: str) -> dict[str, str]:
    secret = app.state.settings.jwt_secret
    if kind == "operator":
        return token("operator", permissions=ALL_OPERATOR_PERMISSIONS, secret=secret)
    if kind == "user":
        return token("user", sub="alice", app="broker-app", secret=secret)
    return token("service", sub="broker-backend", secret=secret)


@pytest.fixture
async def outage_client(request: pytest.FixtureRequest) -> AsyncIterator[httpx.AsyncClient]:
    app = _unreachable_app(request.param)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://outage"
        ) as client:
            client.app = app  # type: ignore[attr-defined]
            yield client


def _assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "dependency_unavailable"
    assert int(response.headers["retry-after"]) > 0
    assert response.headers["x-request-id"]


@pytest.mark.parametrize(
    ("outage_client", "method", "path", "kind", "body"),
    [
        ("activity", "POST", "/v1/events", "service", EVENT),
        ("activity", "POST", "/v1/events/batch", "service", {"events": [EVENT]}),
        ("activity", "GET", "/v1/activities", "operator", None),
        ("referral", "GET", "/v1/me/invite-code", "user", None),
        ("referral", "GET", "/v1/bindings/bob", "operator", None),
        ("reward", "GET", "/v1/prizes", "operator", None),
        ("reward", "GET", "/v1/me/coupons", "user", None),
    ],
    indirect=["outage_client"],
)
async def test_routes_needing_the_database_answer_503_with_retry_after(
    outage_client: httpx.AsyncClient, method: str, path: str, kind: str, body: object
) -> None:
    headers = _headers(outage_client.app, kind)  # type: ignore[attr-defined]
    response = await outage_client.request(method, path, headers=headers, json=body)
    _assert_unavailable(response)


@pytest.mark.parametrize("outage_client", sorted(SERVICES), indirect=True)
async def test_readiness_says_503_and_liveness_200(outage_client: httpx.AsyncClient) -> None:
    ready = await outage_client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["database"].startswith("error")
    assert ready.json()["checks"]["redis"].startswith("error")
    assert (await outage_client.get("/healthz")).status_code == 200


@pytest.mark.parametrize("service", sorted(SERVICES))
async def test_startup_says_so_in_one_line_per_dependency(
    service: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = _unreachable_app(service)
    with caplog.at_level(logging.INFO):
        async with app.router.lifespan_context(app):
            pass
    lines = [r for r in caplog.records if "unreachable at startup" in r.getMessage()]
    assert len(lines) == 2, [r.getMessage() for r in caplog.records]
    assert "database postgresql+asyncpg://" in lines[0].getMessage()
    assert "Redis redis://" in lines[1].getMessage()
    assert all(r.exc_info is None for r in caplog.records)  # no traceback


async def test_the_connection_stays_open_over_real_http() -> None:
    """Through uvicorn: two requests on one keep-alive connection both get the 503."""
    app = _unreachable_app("activity")
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False)
    )
    serving = asyncio.create_task(server.serve())
    try:
        for _ in range(200):
            if server.started:
                break
            await asyncio.sleep(0.05)
        assert server.started
        requests = [
            (
                "POST",
                "/v1/events",
                json.dumps(EVENT),
                {**_headers(app, "service"), "Content-Type": "application/json"},
            ),
            ("GET", "/v1/activities", None, _headers(app, "operator")),
        ]

        def two_requests_on_one_connection() -> list[tuple[int, str | None, str | None]]:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            results = []
            try:
                for method, path, body, headers in requests:
                    conn.request(method, path, body=body, headers=headers)
                    sock = conn.sock
                    response = conn.getresponse()
                    response.read()
                    assert sock is not None and conn.sock is sock  # not closed by either side
                    results.append(
                        (
                            response.status,
                            response.getheader("Retry-After"),
                            response.getheader("Connection"),
                        )
                    )
            finally:
                conn.close()
            return results

        results = await asyncio.to_thread(two_requests_on_one_connection)
        assert [(status, retry) for status, retry, _ in results] == [(503, "2"), (503, "2")]
        assert all(connection != "close" for _, _, connection in results)
    finally:
        server.should_exit = True
        await serving
