"""A failed statement's error (what ends up in the logs) carries no parameters: they may
hold a recipient's name, phone or address."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from tests.service.harness import Platform


async def test_a_failed_statement_does_not_show_its_parameters(platform: Platform) -> None:
    phone = "+852 5555 0199"
    with pytest.raises(DBAPIError) as failure:
        async with platform.db("reward").session() as session:
            await session.execute(
                text("SELECT 1 / 0 WHERE CAST(:phone AS text) IS NOT NULL"), {"phone": phone}
            )
    assert phone not in str(failure.value)
    assert "hidden" in str(failure.value)
