"""Async engine and sessions. One session per request or job: commit on success, rollback on
error. Services and repositories never commit."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any, cast

from fastapi import Depends, Request
from sqlalchemy import (
    ColumnElement,
    DateTime,
    MetaData,
    Table,
    any_,
    bindparam,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, UUID, insert
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.dml import ReturningInsert

# Stable constraint names, so migrations name what the models name.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


# Prepared statements asyncpg keeps per connection (its default, 100, is less than a worker's
# distinct statements: the least recently used were evicted and prepared again).
STATEMENT_CACHE_SIZE = 500

# Set in a session's ``info`` by whatever writes outbox messages in it.
OUTBOX_WRITTEN = "outbox_written"
# Set in a session's ``info`` when its connection plans each statement for its parameters.
PLANS_PER_EXECUTION = "plans_per_execution"


def new_metadata() -> MetaData:
    return MetaData(naming_convention=NAMING_CONVENTION)


class TimestampedMixin:
    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )


def insert_unless_present(model: type[Any], key: Sequence[str]) -> ReturningInsert[Any]:
    """An INSERT of ``model``'s rows, to build once and bind to values: a row whose ``key``
    exists is skipped, the inserted ones come back with every column. For hot paths, where
    building an ORM insert per row cost more than running it."""
    table = cast(Table, model.__table__)
    return insert(table).on_conflict_do_nothing(index_elements=list(key)).returning(*table.columns)


# JSON as text for a statement to cast to jsonb, compact, by one encoder for every value
# (``json.dumps`` with any option builds an encoder per call). None is JSON null, as
# SQLAlchemy writes a JSONB column's None.
json_text = json.JSONEncoder(separators=(",", ":")).encode


def unnest_arrays(columns: dict[str, str], of: str = "r") -> str:
    """``unnest`` of one array parameter per column (``:column``, its type as given; JSON
    travels as text), numbered ``n``, as ``of``: rows bound as one array per column, so the
    statement's text is the same however many rows (a multi-row VALUES is a statement per
    row count) and the driver binds an array per column instead of each row's values."""
    arrays = ", ".join(
        f"CAST(:{c} AS {'text' if t == 'jsonb' else t}[])" for c, t in columns.items()
    )
    return f"unnest({arrays}) WITH ORDINALITY AS {of}({', '.join(columns)}, n)"


def unnested_columns(columns: dict[str, str], of: str = "r") -> str:
    """The select list of ``unnest_arrays``' columns, JSON cast back to jsonb."""
    return ", ".join(
        f"CAST({of}.{c} AS jsonb)" if t == "jsonb" else f"{of}.{c}" for c, t in columns.items()
    )


def any_of(column: Any, values: Collection[Any]) -> ColumnElement[bool]:
    """``column = ANY(:values)``: the values bound as one array, so the statement's text is
    the same however many there are. An ``IN`` list is a new statement per length, and each
    is prepared again once asyncpg's per-connection cache of them is full."""
    return cast(
        ColumnElement[bool], column == any_(bindparam(None, list(values), ARRAY(column.type)))
    )


async def plan_for_parameters(session: AsyncSession) -> None:
    """Plan the rest of this transaction's statements for their actual parameters
    (``SET LOCAL plan_cache_mode``, until commit or rollback). A generic plan cached while a
    table was small — a fresh database has no statistics until autovacuum's first analyze,
    and none at all where autovacuum is off — may join an array parameter by a scan of the
    whole table; planned for the arrays at hand, the same statement probes an index.
    Nothing to do on a connection that plans every statement so (a worker's: see
    ``Database``'s ``plan_per_execution``)."""
    if session.info.get(PLANS_PER_EXECUTION):
        return
    await session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))


def plain_dsn(database_url: str) -> str:
    """The URL as asyncpg itself takes it (``postgresql://``), for connections made outside
    SQLAlchemy's pool."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


class Database:
    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        echo: bool = False,
        connect_timeout: float | None = None,
        pre_ping: bool = True,
        plan_per_execution: bool = False,
    ) -> None:
        """``plan_per_execution``: plan each statement for its parameters instead of
        reusing a generic plan (``plan_cache_mode = force_custom_plan``). For workers, whose
        statements bind arrays of a whole delivery and whose tables grow under them: the
        planning costs little beside such a statement, a generic plan made while a table was
        small can cost a scan of all of it (seen: 2 ms a delivery for three lookups of the
        referral graph). An API's one-row statements keep their cached plans."""
        self.url = url
        # asyncpg's own connect timeout is 60 s: too long to keep a request waiting when the
        # server does not answer; the caller gets a 503 after ``connect_timeout`` instead.
        connect_args: dict[str, Any] = {"prepared_statement_cache_size": STATEMENT_CACHE_SIZE}
        if connect_timeout is not None:
            connect_args["timeout"] = connect_timeout
        if plan_per_execution:
            # Every statement planned for its parameters (see ``plan_for_parameters``), for
            # the whole connection: no round trip per transaction to ask for it.
            connect_args["server_settings"] = {"plan_cache_mode": "force_custom_plan"}
        self.engine: AsyncEngine = create_async_engine(
            url,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=pre_ping,
            echo=echo,
            connect_args=connect_args,
            # A failed statement's error text must not carry its parameters into the logs:
            # they hold recipients' names, phones and addresses.
            hide_parameters=True,
        )
        self.sessionmaker = async_sessionmaker(
            self.engine,
            expire_on_commit=False,
            info={PLANS_PER_EXECUTION: True} if plan_per_execution else None,
        )
        # Called after a commit that wrote outbox messages (the relay's wake-up).
        self.on_outbox_commit: Callable[[], None] | None = None

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """The unit of work of one request or job."""
        session = self.sessionmaker()
        try:
            yield session
            await session.commit()
            if self.on_outbox_commit is not None and session.info.get(OUTBOX_WRITTEN):
                self.on_outbox_commit()
        except BaseException:
            await session.rollback()
            raise
        finally:
            await session.close()

    async def dispose(self) -> None:
        await self.engine.dispose()


async def _request_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.db.session() as session:
        yield session


# scope="function": the commit happens before the response is sent, so a failed commit is
# reported to the caller instead of being lost after a 2xx.
SessionDep = Annotated[AsyncSession, Depends(_request_session, scope="function")]
