"""Sandbox tenants' own clocks (SPEC §6 "Sandbox tenants"), shared by the three services.

A sandbox tenant's time stands still until an operator advances it; every other tenant reads
the system clock. Each service keeps its copy of a sandbox tenant's time in its own
``sandbox_clocks`` table (no service reads another's tables): the activity service owns the
clock and the advance, and pushes the new time to the other two before anything due at that
time is done. A row exists only for sandbox tenants, and only where the deployment allows
sandboxes (``SANDBOX_ENABLED``); a production deployment never looks the table up, so its
tenants always get the system clock.

Every time-driven rule reads time through ``TenantClocks.for_tenant`` (jobs) or ``ClockDep``
(requests), so one clock drives them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from datetime import datetime
from types import TracebackType
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from sqlalchemy import DateTime, String, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from service_kit.clock import Clock, FrozenClock
from service_kit.db import Database
from service_kit.errors import problems
from service_kit.outbox import OutboxRepository
from service_kit.queue import SERVICES, queue_name

log = logging.getLogger(__name__)

# What the referral and reward services answer the activity service's clock sync with.
CLOCK_SYNC_PROBLEMS = problems(
    {
        404: ["sandbox_disabled", "not_sandbox"],
        409: {"tenant_not_empty": "the tenant has data here; it cannot become a sandbox"},
    }
)


class SandboxClockMixin:
    """Columns of every service's ``sandbox_clocks`` table: one row per sandbox tenant."""

    __tablename__ = "sandbox_clocks"

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # The tenant's current time; it only ever moves forward.
    now: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    # Set while an advance is under way (activity service only): where it is going.
    target: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The system time until which one request holds the advance (activity service only).
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )


class SandboxClockRepository:
    def __init__(self, session: AsyncSession, model: type[Any]) -> None:
        self.session = session
        self.model = model

    async def get(self, tenant_id: str) -> Any | None:
        return await self.session.get(self.model, tenant_id, populate_existing=True)

    async def create(self, tenant_id: str, at: datetime) -> Any | None:
        """The tenant's clock, created at ``at``; None if it already existed."""
        m = self.model
        stmt = (
            insert(m)
            .values(tenant_id=tenant_id, now=at)
            .on_conflict_do_nothing(index_elements=["tenant_id"])
            .returning(m)
        )
        return (await self.session.scalars(stmt)).one_or_none()

    async def move_forward(self, tenant_id: str, at: datetime) -> Any | None:
        """Set the clock to ``at`` unless it is already later (never backwards)."""
        m = self.model
        stmt = (
            update(m)
            .where(m.tenant_id == tenant_id)
            .values(now=func.greatest(m.now, at), updated_at=func.now())
            .returning(m)
            .execution_options(populate_existing=True)
        )
        return (await self.session.scalars(stmt)).one_or_none()

    async def copy(self, tenant_id: str, at: datetime) -> Any:
        """A replica of the owner's clock (reward, referral): created or moved forward."""
        m = self.model
        values = insert(m).values(tenant_id=tenant_id, now=at)
        stmt = (
            values.on_conflict_do_update(
                index_elements=["tenant_id"],
                set_={"now": func.greatest(m.now, values.excluded.now), "updated_at": func.now()},
            )
            .returning(m)
            .execution_options(populate_existing=True)
        )
        return (await self.session.scalars(stmt)).one()

    async def tenants(self) -> set[str]:
        return set((await self.session.scalars(select(self.model.tenant_id))).all())


# Where a session keeps the clocks it has read (``TenantClocks.for_tenant``).
_CLOCKS_READ = "sandbox_clocks_read"


class TenantClocks:
    """The clock of each tenant: the system (or test) clock, or a sandbox tenant's own."""

    def __init__(self, base: Clock, db: Database | None, model: type[Any] | None, enabled: bool):
        self.base = base
        self.db = db
        self.model = model
        self.enabled = enabled and db is not None and model is not None

    async def for_tenant(self, tenant_id: str, session: AsyncSession | None = None) -> Clock:
        """The tenant's clock. Given the job's or request's ``session``, it is read in that
        unit of work, once per tenant: a lookup of its own would cost a connection
        checkout and a transaction per message."""
        if not self.enabled:
            return self.base
        assert self.db is not None
        if session is None:
            async with self.db.session() as own:
                return await self._read(own, tenant_id)
        memo: dict[str, Clock] = session.info.setdefault(_CLOCKS_READ, {})
        if tenant_id not in memo:
            memo[tenant_id] = await self._read(session, tenant_id)
        return memo[tenant_id]

    async def _read(self, session: AsyncSession, tenant_id: str) -> Clock:
        assert self.model is not None
        now = await session.scalar(select(self.model.now).where(self.model.tenant_id == tenant_id))
        return self.base if now is None else FrozenClock(now)

    async def now(self, tenant_id: str, session: AsyncSession | None = None) -> datetime:
        return (await self.for_tenant(tenant_id, session)).now()

    async def sandbox_tenants(self) -> set[str]:
        """Tenants whose time-driven work follows their own clock, not the cron's."""
        if not self.enabled:
            return set()
        assert self.db is not None and self.model is not None
        async with self.db.session() as session:
            return await SandboxClockRepository(session, self.model).tenants()


async def work_owed(
    db: Database, outbox_model: type[Any], redis: Redis, prefix: str, tenant_id: str
) -> int:
    """How much of a tenant's work this service still owes: its messages not sent yet, and
    the jobs carrying its sent ones still waiting or running (arq removes a job from its
    queue when it finishes). A job's new messages are committed before it finishes, so
    "nothing owed" twice in a row, across the services, means the tenant's work is done.

    The unsent messages are counted first, then the queues are read, then the sent messages
    are looked for among the deliveries still queued only: a message sent after the count
    was enqueued before its sending committed (the relay enqueues, then commits), so it is
    in the queues read, or already done. Most looks find the queues without this service's
    jobs and read no sent message at all: the sent, unconfirmed ones (until the sweep
    confirms them, seconds later) are thousands after a busy step."""
    async with db.session() as session:
        repo = OutboxRepository.from_session(session, outbox_model)
        unsent = await repo.unsent_for_tenant(tenant_id)
        queued = await queued_deliveries(redis, prefix)
        if not queued:
            return unsent
        return unsent + await repo.tenant_deliveries_among(tenant_id, queued)


async def queued_deliveries(redis: Redis, prefix: str) -> list[str]:
    """The deliveries of this deployment whose job waits or runs in a service's queue."""
    pipe = redis.pipeline(transaction=False)
    for service in SERVICES:
        pipe.zrange(queue_name(prefix, service), 0, -1)
    mine = f"{prefix}:"
    found: list[str] = []
    for members in await pipe.execute():
        for member in members:
            job_id = member.decode() if isinstance(member, bytes) else str(member)
            if job_id.startswith(mine):
                found.append(job_id[len(mine) :])
    return found


def work_done_channel(prefix: str) -> str:
    """The Redis channel on which every worker of a deployment allowing sandboxes says "a
    job ended" (``announce_work_done``): an advance waiting for a tenant's queued work
    looks again when something may have changed, instead of polling."""
    return f"{prefix}:sandbox:work-done"


async def announce_work_done(redis: Redis, prefix: str) -> None:
    """Tell waiting advances a job ended (after arq removed it from its queue, so a look
    that follows no longer counts it). A lost announcement costs a waiter its fallback
    interval, never a wrong answer: the waiter decides by looking, not by the message."""
    try:
        await redis.publish(work_done_channel(prefix), b"1")
    except Exception as exc:  # the job's own outcome is recorded already
        log.debug("work-done announcement not sent: %r", exc)


class WorkDoneWaiter:
    """A subscription to the work-done channel, made before the first look so no job's end
    can fall between a look and the wait that follows it. ``wait`` returns once a job ended
    since the last wait, or after ``fallback`` seconds (a worker that does not announce, a
    subscription lost): the caller then looks again."""

    def __init__(self, redis: Redis, prefix: str, fallback: float, spacing: float = 0.0) -> None:
        self.redis = redis
        self.channel = work_done_channel(prefix)
        self.fallback = fallback
        # The least time between two returns: busy workers end jobs many times a second,
        # and a look costs a query here and a call to each other service.
        self.spacing = spacing
        self.returned = -math.inf
        self.pubsub: PubSub | None = None

    async def __aenter__(self) -> WorkDoneWaiter:
        try:
            pubsub = self.redis.pubsub()
            await pubsub.subscribe(self.channel)
            # The confirmation: from here on every announcement reaches this subscription.
            deadline = time.monotonic() + self.fallback
            while time.monotonic() < deadline:
                message = await pubsub.get_message(timeout=deadline - time.monotonic())
                if message is not None and message["type"] == "subscribe":
                    self.pubsub = pubsub
                    break
            else:
                await pubsub.aclose()
        except Exception as exc:
            log.warning("work-done channel not subscribed, polling instead: %r", exc)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.pubsub is not None:
            with contextlib.suppress(Exception):
                await self.pubsub.aclose()
            self.pubsub = None

    async def wait(self) -> bool:
        """True when woken by an announcement (every one pending is taken at once: one look
        answers them all), False after the fallback interval; never sooner than ``spacing``
        after the previous return (what is announced meanwhile is taken too)."""
        woken = await self._heard()
        if (early := self.returned + self.spacing - time.monotonic()) > 0:
            await asyncio.sleep(early)
            woken = await self._drained() or woken
        self.returned = time.monotonic()
        return woken

    async def _heard(self) -> bool:
        if self.pubsub is None:
            await asyncio.sleep(self.fallback)
            return False
        deadline = time.monotonic() + self.fallback
        woken = False
        try:
            while not woken and (left := deadline - time.monotonic()) > 0:
                message = await self.pubsub.get_message(timeout=left)
                woken = message is not None and message["type"] == "message"
        except Exception as exc:
            await self._lost(exc)
        return await self._drained() or woken

    async def _drained(self) -> bool:
        """Take every announcement pending; True if there was one."""
        heard = False
        try:
            while self.pubsub is not None:
                message = await self.pubsub.get_message(timeout=0)
                if message is None:
                    break
                heard = heard or message["type"] == "message"
        except Exception as exc:
            await self._lost(exc)
        return heard

    async def _lost(self, exc: BaseException) -> None:
        log.warning("work-done channel lost, polling instead: %r", exc)
        pubsub, self.pubsub = self.pubsub, None
        if pubsub is not None:
            with contextlib.suppress(Exception):
                await pubsub.aclose()
