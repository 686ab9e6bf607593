"""The three apps in one process over ASGI, their workers run in burst mode on real Redis,
and helpers to mint tokens and drive jobs to completion."""

from __future__ import annotations

import contextlib
import importlib
import inspect
import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import text

from activity_platform.services import SERVICES
from service_kit.auth import CallerKind, encode_token
from service_kit.clock import FrozenClock
from service_kit.config import ServiceSettings
from service_kit.db import Database
from service_kit.errors import PROBLEM_JSON, declared_problem_codes
from service_kit.outbox import relay_once
from service_kit.queue import create_arq_pool, enqueue, queue_name
from service_kit.sandbox import TenantClocks

BASE_URLS = {name: f"http://{name}.test" for name in SERVICES}
ALL_OPERATOR_PERMISSIONS = ["ActivityCenterFull", "RightsSystemFull"]


def token(
    kind: str,
    tenant: str = "tenant-a",
    *,
    sub: str = "someone",
    app: str | None = None,
    permissions: list[str] | None = None,
    secret: str,
) -> dict[str, str]:
    jwt = encode_token(
        secret,
        sub=sub,
        tenant_id=tenant,
        kind=CallerKind(kind),
        app_id=app,
        permissions=permissions if permissions is not None else [],
    )
    return {"Authorization": f"Bearer {jwt}"}


@dataclass
class Platform:
    settings: dict[str, ServiceSettings]
    apps: dict[str, FastAPI]
    clients: dict[str, httpx.AsyncClient]
    clock: FrozenClock
    # Base URL → ASGI transport, shared with every app's ServiceClient and handed to workers
    # that accept ``http_mounts``; tests may add more (e.g. a cash system) before draining.
    mounts: dict[str, httpx.AsyncBaseTransport] = field(default_factory=dict)
    # Problems an operation answered without declaring them (``ProblemCodeCheck``).
    undeclared_problems: list[str] = field(default_factory=list)
    _stack: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)

    @property
    def activity(self) -> httpx.AsyncClient:
        return self.clients["activity"]

    @property
    def referral(self) -> httpx.AsyncClient:
        return self.clients["referral"]

    @property
    def reward(self) -> httpx.AsyncClient:
        return self.clients["reward"]

    def db(self, service: str) -> Database:
        return self.apps[service].state.db

    def operator(
        self, tenant: str = "tenant-a", permissions: list[str] | None = None, sub: str = "ops-1"
    ) -> dict[str, str]:
        perms = ALL_OPERATOR_PERMISSIONS if permissions is None else permissions
        return token("operator", tenant, sub=sub, permissions=perms, secret=self.secret)

    def user(self, sub: str, tenant: str = "tenant-a", app: str = "broker-app") -> dict[str, str]:
        return token("user", tenant, sub=sub, app=app, secret=self.secret)

    def service(self, tenant: str = "tenant-a", sub: str = "broker-backend") -> dict[str, str]:
        return token("service", tenant, sub=sub, secret=self.secret)

    def job_clocks(self, service: str) -> TenantClocks:
        """What a worker gives its jobs as ``ctx["clocks"]``: each tenant's clock."""
        return self.apps[service].state.clocks  # type: ignore[no-any-return]

    @property
    def secret(self) -> str:
        return self.settings["activity"].jwt_secret

    async def relay(self) -> int:
        """Move every unsent outbox message of the three services to Redis."""
        sent = 0
        for name in SERVICES:
            redis = self.apps[name].state.arq
            module = __import__(f"{SERVICES[name].module}.db", fromlist=["OutboxMessage"])
            while True:
                n = await relay_once(
                    self.db(name), module.OutboxMessage, redis, self.settings[name].queue_prefix
                )
                sent += n
                if n == 0:
                    break
        return sent

    async def run_queued_jobs(self) -> int:
        """Run every queued job of every service with its real arq worker (burst mode)."""
        ran = 0
        for name in SERVICES:
            redis = self.apps[name].state.arq
            queued = await redis.zcard(queue_name(self.settings[name].queue_prefix, name))
            if queued:
                worker = await self._run_worker(name)
                ran += worker.jobs_complete + worker.jobs_failed
        return ran

    async def deliver(self, service: str, job_name: str, payloads: list[dict[str, Any]]) -> Any:
        """One delivery carrying ``payloads``, run by the service's real worker (burst);
        returns the worker, whose counters tell how many tries the delivery took."""
        await enqueue(
            self.apps[service].state.arq,
            self.settings[service].queue_prefix,
            service,
            job_name,
            payloads,  # type: ignore[arg-type]  # a delivery is a list of payloads
            f"batch:{uuid.uuid4().hex}",
        )
        return await self._run_worker(service)

    async def _run_worker(self, name: str) -> Any:
        spec = SERVICES[name]
        extra: dict[str, Any] = {}
        factory = importlib.import_module(f"{spec.module}.worker").create_worker
        if "http_mounts" in inspect.signature(factory).parameters:
            extra["http_mounts"] = self.mounts
        worker = spec.create_worker(
            settings=self.settings[name], clock=self.clock, burst=True, **extra
        )
        worker_run_relay_off(worker)
        try:
            await worker.async_run()
        finally:
            await worker.close()
        return worker

    async def drain(self, max_rounds: int = 20) -> None:
        """Relay and run jobs until the whole platform is quiet."""
        for _ in range(max_rounds):
            sent = await self.relay()
            ran = await self.run_queued_jobs()
            if sent == 0 and ran == 0:
                return
        raise AssertionError("the platform did not go quiet")

    async def truncate(self) -> None:
        for name in SERVICES:
            engine = self.db(name).engine
            async with engine.begin() as conn:
                tables = (
                    (
                        await conn.execute(
                            text(
                                "SELECT tablename FROM pg_tables WHERE schemaname='public' "
                                "AND tablename <> 'alembic_version'"
                            )
                        )
                    )
                    .scalars()
                    .all()
                )
                if tables:
                    await conn.execute(
                        text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " CASCADE")
                    )
        await self.lose_redis_data()

    async def lose_redis_data(self) -> None:
        """Every key of this platform gone, as when Redis restarts without persistence."""
        for name in SERVICES:
            redis = self.apps[name].state.arq
            prefix = self.settings[name].queue_prefix
            # A thousand keys a round trip: a shared Redis holding other runs' keys (kept
            # job results) made the default ten a round trip cost seconds per test.
            keys = [k async for k in redis.scan_iter(f"{prefix}:*", count=1000)]
            keys += [k async for k in redis.scan_iter(f"arq:*:{prefix}:*", count=1000)]
            if keys:
                await redis.delete(*keys)

    async def aclose(self) -> None:
        for client in self.clients.values():
            await client.aclose()
        await self._stack.aclose()


class ProblemCodeCheck:
    """Around an app: every problem an operation answers must be among the codes it
    declares (``problems`` on the route) at that status; what is not, and a problem from an
    operation that declares none, is noted in ``found`` (the service tests fail on it), so
    the documents cannot drift from the code."""

    def __init__(self, app: FastAPI, found: list[str]) -> None:
        self.app = app
        self.found = found

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        answer: dict[str, Any] = {"body": b""}

        async def noting(message: Any) -> None:
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
                answer["headers"] = dict(message.get("headers", []))
            elif message["type"] == "http.response.body":
                answer["body"] += message.get("body", b"")
            await send(message)

        await self.app(scope, receive, noting)
        status = answer.get("status", 0)
        media = answer.get("headers", {}).get(b"content-type", b"").decode()
        if status < 400 or not media.startswith(PROBLEM_JSON):
            return
        operation = operation_of(self.app.openapi(), scope["method"], scope["path"])
        if operation is None:
            return  # no operation of the document (an unknown path or method)
        declared = declared_problem_codes(self.app.openapi(), operation)
        code = json.loads(answer["body"]).get("code")
        if code in ("dependency_unavailable", "internal_error", "body_too_large"):
            return  # not the operation's doing: an outage, a bug (failing on its own), a limit
        if declared is None:
            self.found.append(f"{operation} answered {status} {code!r} but declares no codes")
        elif code not in declared.get(status, set()):
            self.found.append(f"{operation} answered {status} {code!r} (declared: {declared})")


def operation_of(schema: dict[str, Any], method: str, path: str) -> str | None:
    """The operationId of the document's operation that answers ``method path``: of the
    path templates that match, the most literal one (``/export`` before ``/{record_id}``),
    as the routes are declared."""
    found: list[tuple[int, str]] = []
    for template, operations in schema.get("paths", {}).items():
        operation = operations.get(method.lower())
        if operation is None:
            continue
        literal = re.split(r"\{[^}]+\}", template)
        pattern = "[^/]+".join(re.escape(part) for part in literal)
        if re.fullmatch(pattern, path):
            found.append((sum(len(part) for part in literal), operation["operationId"]))
    return max(found)[1] if found else None


def worker_run_relay_off(worker: Any) -> None:
    """Tests relay explicitly (``Platform.relay``); the worker's own loop would race it."""
    startup = worker.on_startup

    async def on_startup(ctx: dict[str, Any]) -> None:
        await startup(ctx)
        task = ctx.pop("relay_task", None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task

    worker.on_startup = on_startup


async def start_platform(urls: dict[str, str], redis_url: str, queue_prefix: str) -> Platform:
    clock = FrozenClock()
    settings: dict[str, ServiceSettings] = {}
    for name, spec in SERVICES.items():
        settings[name] = spec.settings(
            database_url=urls[name],
            redis_url=redis_url,
            queue_prefix=queue_prefix,
            activity_url=BASE_URLS["activity"],
            referral_url=BASE_URLS["referral"],
            reward_url=BASE_URLS["reward"],
            db_pool_size=5,
            # Test systems are plain-http names served in-process (as under `dev`); the
            # outbound policy outside dev is tested on its own.
            dev_mode=True,
            # Sandbox tenants allowed; a tenant without a sandbox clock keeps the test clock.
            sandbox_enabled=True,
        )
    apps: dict[str, FastAPI] = {}
    mounts: dict[str, httpx.AsyncBaseTransport] = {}
    for name, spec in SERVICES.items():
        apps[name] = spec.create_app(settings=settings[name], clock=clock, http_mounts=mounts)
    platform = Platform(settings=settings, apps=apps, clients={}, clock=clock, mounts=mounts)
    checked = {
        name: ProblemCodeCheck(app, platform.undeclared_problems) for name, app in apps.items()
    }
    for name in apps:
        mounts[BASE_URLS[name]] = httpx.ASGITransport(app=checked[name])
    for name, app in apps.items():
        await platform._stack.enter_async_context(app.router.lifespan_context(app))
        app.state.arq = await create_arq_pool(redis_url)
        platform._stack.push_async_callback(app.state.arq.aclose)
        platform.clients[name] = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=checked[name]), base_url=BASE_URLS[name]
        )
    return platform
