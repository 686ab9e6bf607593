from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from tests.infra import Infra
from tests.service.harness import Platform, start_platform


@pytest.fixture(scope="session")
async def platform_session(infra: Infra, database_urls: dict[str, str]) -> AsyncIterator[Platform]:
    platform = await start_platform(database_urls, infra.redis_url, infra.queue_prefix)
    yield platform
    await platform.aclose()


@pytest.fixture
async def platform(platform_session: Platform) -> AsyncIterator[Platform]:
    await platform_session.truncate()
    # Every test starts at the same instant, in UTC, whatever the previous test set.
    platform_session.clock.set(datetime(2026, 11, 23, 2, 0, tzinfo=UTC))
    platform_session.undeclared_problems.clear()
    yield platform_session
    # Every problem an operation answered is one its OpenAPI document lists.
    undeclared, platform_session.undeclared_problems[:] = (
        list(platform_session.undeclared_problems),
        [],
    )
    assert not undeclared, "problem codes missing from the routes' `problems(...)`:\n" + (
        "\n".join(undeclared)
    )
