from __future__ import annotations

from collections.abc import AsyncIterator

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
    platform_session.clock.set(
        platform_session.clock.now().replace(
            year=2026, month=11, day=23, hour=2, minute=0, second=0, microsecond=0
        )
    )
    yield platform_session
