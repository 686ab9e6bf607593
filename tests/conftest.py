"""Shared fixtures: real PostgreSQL + Redis, one database per service per test run,
migrated with alembic; tables truncated before each service test."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from tests.infra import Infra, create_databases, drop_databases, start_infra


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    started = start_infra()
    yield started
    started.stop()


@pytest.fixture(scope="session")
def database_urls(infra: Infra) -> Iterator[dict[str, str]]:
    urls = create_databases(infra)
    yield urls
    asyncio.run(drop_databases(infra, urls))
