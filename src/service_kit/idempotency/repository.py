"""All SQL on ``idempotency_keys``."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import delete, func, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from service_kit.idempotency.models import IdempotencyKeyMixin

# A key answers retries this long by default (``IDEMPOTENCY_KEY_RETENTION_HOURS``); after
# that it may name a new request, and the expiry job deletes it.
DEFAULT_KEEP = timedelta(hours=24)


class IdempotencyRepository:
    def __init__(
        self,
        session: AsyncSession,
        model: type[IdempotencyKeyMixin],
        tenant_id: str,
        caller: str,
        keep: timedelta = DEFAULT_KEEP,
    ) -> None:
        self.session = session
        self.model = model
        self.tenant_id = tenant_id
        self.caller = caller
        self.keep = keep

    def _this(self, key: str) -> Any:
        m = self.model
        return (m.tenant_id == self.tenant_id) & (m.caller == self.caller) & (m.key == key)

    async def claim(self, key: str, fingerprint: str) -> bool:
        """Insert the key for this request; False when it is taken. A key claimed by a
        transaction still running makes this wait until that one ends, so of two concurrent
        requests the second sees the first's response (or, if it failed, claims the key)."""
        m = self.model
        stmt = (
            insert(m)
            .values(tenant_id=self.tenant_id, caller=self.caller, key=key, fingerprint=fingerprint)
            .on_conflict_do_update(
                index_elements=[m.tenant_id, m.caller, m.key],
                # An expired key is taken over by the new request.
                set_={
                    "fingerprint": fingerprint,
                    "status_code": None,
                    "headers": None,
                    "body": None,
                    "created_at": func.now(),
                },
                where=m.created_at < func.now() - self.keep,
            )
            .returning(m.key)
        )
        return (await self.session.execute(stmt)).first() is not None

    async def get(self, key: str) -> IdempotencyKeyMixin | None:
        found = await self.session.execute(select(self.model).where(self._this(key)))
        return found.scalar_one_or_none()

    async def store(self, key: str, status_code: int, headers: dict[str, str], body: bytes) -> None:
        await self.session.execute(
            update(self.model)
            .where(self._this(key))
            .values(status_code=status_code, headers=headers, body=body)
        )

    async def release(self, key: str) -> None:
        await self.session.execute(delete(self.model).where(self._this(key)))


async def delete_expired(
    session: AsyncSession, model: type[IdempotencyKeyMixin], keep: timedelta, limit: int
) -> int:
    """Delete up to ``limit`` keys older than ``keep``, oldest first, in one statement (all
    tenants). A key whose row is locked — being taken over by a new request right now — is
    skipped, not waited for: the next pass sees it again if it is still expired."""
    m = model
    expired = (
        select(m.tenant_id, m.caller, m.key)
        .where(m.created_at < func.now() - keep)
        .order_by(m.created_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    result = await session.execute(
        delete(m)
        .where(tuple_(m.tenant_id, m.caller, m.key).in_(expired))
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)
