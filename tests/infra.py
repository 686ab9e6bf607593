"""Real PostgreSQL and Redis for the tests: the servers named in ``TEST_PG_URL`` /
``TEST_REDIS_URL`` when set, else embedded ones started for the run."""

from __future__ import annotations

import asyncio
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from activity_platform.embedded import EmbeddedPostgres, EmbeddedRedis, database_url
from activity_platform.services import SERVICES
from service_kit.config import normalize_database_url
from service_kit.migrations import ensure_database, upgrade

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Infra:
    pg_server_url: str
    redis_url: str
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    _embedded: list[object] = field(default_factory=list)

    def db_url(self, service: str, suffix: str = "") -> str:
        return database_url(self.pg_server_url, f"t_{self.run_id}{suffix}_{service}")

    @property
    def queue_prefix(self) -> str:
        return f"test-{self.run_id}"

    def stop(self) -> None:
        for server in reversed(self._embedded):
            server.stop()  # type: ignore[attr-defined]


async def _tune_for_tests(server_url: str) -> None:
    """A throwaway test server need not wait for each commit to reach the disk; without
    this, the fault test's thousands of small transactions crawl on slow disks."""
    admin = create_async_engine(
        make_url(server_url).set(database="postgres"), isolation_level="AUTOCOMMIT"
    )
    async with admin.connect() as conn:
        await conn.execute(text("ALTER SYSTEM SET synchronous_commit TO off"))
        await conn.execute(text("SELECT pg_reload_conf()"))
    await admin.dispose()


def start_infra() -> Infra:
    embedded: list[object] = []
    pg_url = os.environ.get("TEST_PG_URL")
    if not pg_url:
        pg = EmbeddedPostgres(ROOT / ".data" / "test-postgres")
        pg_url = pg.start()
        embedded.append(pg)
        asyncio.run(_tune_for_tests(pg_url))
    else:
        pg_url = normalize_database_url(pg_url)  # postgresql:// or postgres:// as well
    redis_url = os.environ.get("TEST_REDIS_URL")
    if not redis_url:
        redis = EmbeddedRedis(ROOT / ".data" / "test-redis")
        redis_url = redis.start()
        embedded.append(redis)
    return Infra(pg_server_url=pg_url, redis_url=redis_url, _embedded=embedded)


def create_databases(infra: Infra, suffix: str = "") -> dict[str, str]:
    urls = {name: infra.db_url(name, suffix) for name in SERVICES}
    for name, url in urls.items():
        asyncio.run(ensure_database(url))
        upgrade(name, url)
    return urls


async def drop_databases(infra: Infra, urls: dict[str, str]) -> None:
    admin = create_async_engine(
        make_url(infra.pg_server_url).set(database="postgres"), isolation_level="AUTOCOMMIT"
    )
    async with admin.connect() as conn:
        for url in urls.values():
            name = make_url(url).database
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await admin.dispose()
