"""Workers plan each statement for its parameters on their connections; an API's
connections keep PostgreSQL's cached plans and ask for custom ones per transaction."""

from __future__ import annotations

from sqlalchemy import event, text

from service_kit.db import Database, plan_for_parameters


async def _mode(session) -> str:  # type: ignore[no-untyped-def]
    return str(await session.scalar(text("SHOW plan_cache_mode")))


async def test_a_worker_connection_plans_every_statement_for_its_parameters(
    database_urls: dict[str, str],
) -> None:
    db = Database(database_urls["activity"], pool_size=1, plan_per_execution=True)
    sent: list[str] = []
    event.listen(db.engine.sync_engine, "before_cursor_execute", lambda *a: sent.append(a[2]))
    try:
        async with db.session() as session:
            assert await _mode(session) == "force_custom_plan"
            sent.clear()
            await plan_for_parameters(session)  # nothing to ask: no statement is sent
            assert sent == []
        async with db.session() as session:  # not a setting of one transaction
            assert await _mode(session) == "force_custom_plan"
    finally:
        await db.dispose()


async def test_an_api_connection_asks_for_custom_plans_per_transaction(
    database_urls: dict[str, str],
) -> None:
    db = Database(database_urls["activity"], pool_size=1)
    try:
        async with db.session() as session:
            assert await _mode(session) == "auto"
            await plan_for_parameters(session)
            assert await _mode(session) == "force_custom_plan"
        async with db.session() as session:  # SET LOCAL ends with its transaction
            assert await _mode(session) == "auto"
    finally:
        await db.dispose()
