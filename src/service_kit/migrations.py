"""One alembic environment per service database, driven programmatically.

``migrations/<service>/env.py`` calls :func:`run_env`; :func:`upgrade` is what the
``migrate`` command and the tests call.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, pool, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import create_async_engine

MIGRATIONS_ROOT = Path(__file__).resolve().parents[2] / "migrations"


def migrations_root() -> Path:
    """``MIGRATIONS_DIR`` when set (the image installs the package as a wheel, away from
    the repository's ``migrations/``, and sets it), else the repository's."""
    configured = os.environ.get("MIGRATIONS_DIR")
    return Path(configured) if configured else MIGRATIONS_ROOT


def alembic_config(service: str, database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_root() / service))
    config.set_main_option("file_template", "%%(year)d%%(month).2d%%(day).2d_%%(rev)s_%%(slug)s")
    config.attributes["database_url"] = database_url
    return config


def upgrade(service: str, database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(service, database_url), revision)


def downgrade(service: str, database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(service, database_url), revision)


async def ensure_database(database_url: str) -> bool:
    """Create the database named in ``database_url`` if missing; True when created."""
    url = make_url(database_url)
    name = url.database
    admin = create_async_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            exists = await conn.scalar(
                text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
            )
            if not exists:
                await conn.execute(text(f'CREATE DATABASE "{name}"'))
                return True
            return False
    finally:
        await admin.dispose()


def run_env(target_metadata: MetaData) -> None:
    """Body of every service's ``env.py`` (online mode, async engine)."""
    url = context.config.attributes.get("database_url")
    if url is None:
        raise RuntimeError("run migrations through `activity-platform migrate`")

    def do_run(connection: Connection) -> None:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            compare_type=True,
            transaction_per_migration=True,
        )
        with context.begin_transaction():
            context.run_migrations()

    async def run_async() -> None:
        engine = create_async_engine(url, poolclass=pool.NullPool)
        async with engine.connect() as connection:
            await connection.run_sync(do_run)
        await engine.dispose()

    asyncio.run(run_async())
