from __future__ import annotations

import builtins
import uuid
from collections.abc import AsyncIterator, Collection
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ARRAY,
    DateTime,
    Select,
    and_,
    bindparam,
    case,
    func,
    literal,
    literal_column,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from reward_service.payouts.models import CashPayout
from reward_service.prizes.models import Prize
from reward_service.records.models import RecordTransition, RewardRecord, record_number_seq
from service_kit.db import (
    any_of,
    json_text,
    plan_for_parameters,
    unnest_arrays,
    unnested_columns,
)
from service_kit.pagination import PageParams, paginate

# The columns of a new record, with the type its values travel as (one array each).
_NEW_RECORD_COLUMNS = {
    "tenant_id": "text",
    "grant_key": "text",
    "activity_code": "text",
    "activity_name": "text",
    "activity_names": "jsonb",
    "rule_id": "text",
    "user_id": "text",
    "app_id": "text",
    "counterpart_id": "text",
    "referral_role": "text",
    "enterprise_name": "text",
    "task": "text",
    "achieved_at": "timestamptz",
    "prize_id": "uuid",
    "prize_type": "text",
    "prize_name": "text",
    "prize_title": "jsonb",
    "issuance_form": "text",
    "status": "text",
    "lock_amount": "numeric",
    "lock_currency": "text",
    "lock_days": "int",
    "lock_started_at": "timestamptz",
    "lock_expires_at": "timestamptz",
    "lock_issue_after": "boolean",
    "issued_at": "timestamptz",
    "issued_to": "text",
    "version": "int",
    "updated_at": "timestamptz",
}


# A delivery's new records in one statement, their rows bound as one array per column: a
# statement text that never changes, and nothing per row for the client to bind (a
# multi-row VALUES bound some thirty parameters a row). Rows go in the order given (ORDER
# BY their place in the arrays). The database draws the id and the number: the number's
# prefix (``number_prefix``) followed by the next value of the sequence, padded to eight
# digits at least (``service.format_number``), so no round trip draws the numbers first;
# only the inserted rows' id and number come back.
_INSERT_RECORDS = text(
    f"""
INSERT INTO reward_records (id, number, {", ".join(_NEW_RECORD_COLUMNS)})
SELECT gen_random_uuid(),
       q.number_prefix || lpad(CAST(q.seq AS text), greatest(8, length(CAST(q.seq AS text))), '0'),
       {unnested_columns(_NEW_RECORD_COLUMNS, "q")}
FROM (
    SELECT nextval('{record_number_seq.name}') AS seq, r.*
    FROM {unnest_arrays({**_NEW_RECORD_COLUMNS, "number_prefix": "text"})}
    ORDER BY r.n
) AS q
ORDER BY q.n
ON CONFLICT (tenant_id, grant_key) DO NOTHING
RETURNING id, number, tenant_id, grant_key
"""
)
_JSON_COLUMNS = frozenset(c for c, t in _NEW_RECORD_COLUMNS.items() if t == "jsonb")

_TRANSITION_COLUMNS = {
    "record_id": "uuid",
    "from_status": "text",
    "to_status": "text",
    "action": "text",
    "actor": "text",
    "reason": "text",
    "at": "timestamptz",
}
# Moves recorded together, in one statement: their ids are drawn in the order of the
# arrays (ORDER BY), so a record's moves keep their order of ids.
_INSERT_TRANSITIONS = text(
    f"""
INSERT INTO reward_record_transitions ({", ".join(_TRANSITION_COLUMNS)})
SELECT {unnested_columns(_TRANSITION_COLUMNS)}
FROM {unnest_arrays(_TRANSITION_COLUMNS)}
ORDER BY r.n
"""
)


def _sparse(values: builtins.list[Any]) -> builtins.list[Any]:
    """A column whose values are all null is sent as an empty array: ``unnest`` of several
    arrays pads the shorter ones with nulls, so nothing is encoded for it."""
    return values if any(v is not None for v in values) else []


# Which tenants' records a reconciler pass looks at: (only this one, or all but these).
TenantScope = tuple[str | None, Collection[str]]


class RecordRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @classmethod
    def from_session(cls, session: AsyncSession) -> RecordRepository:
        return cls(session)

    async def recorded_grants(self, keys: list[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which of the (tenant, grant key) pairs already have a record: per tenant, one
        probe of the unique index per key, the keys bound as one array, each probed by a
        LATERAL subquery (its LIMIT keeps it one), planned for its actual parameters.

        A fresh table has no statistics until autovacuum first analyzes it (a minute
        later; never where autovacuum is off). Planned then, a ``grant_key = ANY(keys)``
        filter scans the tenant's rows by a tenant index, and so does the probe in a
        generic plan cached while the table was tiny (the indexes cost the same then):
        25 to 80 ms a delivery once the tenant has 14k records, against 0.1 ms. Planned
        for each execution, the probe (both columns of the unique index by equality)
        uses the unique index whatever the table's statistics; the filter does not."""
        if not keys:
            return set()
        await plan_for_parameters(self.session)
        by_tenant: dict[str, set[str]] = {}
        for tenant_id, grant_key in keys:
            by_tenant.setdefault(tenant_id, set()).add(grant_key)
        r = RewardRecord
        found: set[tuple[str, str]] = set()
        for tenant_id, grant_keys in by_tenant.items():
            wanted = (
                func.unnest(bindparam(None, sorted(grant_keys), ARRAY(r.grant_key.type)))
                .table_valued("grant_key")
                .render_derived(name="k")
            )
            hit = (
                select(literal_column("1"))
                .where(r.tenant_id == tenant_id, r.grant_key == wanted.c.grant_key)
                .limit(literal_column("1"))
                .lateral("hit")
            )
            stmt = select(wanted.c.grant_key).select_from(wanted.join(hit, true()))
            found.update((tenant_id, k) for k in (await self.session.scalars(stmt)).all())
        return found

    async def insert_new(
        self, rows: builtins.list[tuple[dict[str, Any], str]]
    ) -> dict[tuple[str, str], tuple[uuid.UUID, str]]:
        """Insert many records — (their columns but the id and number, which the database
        draws; the number's prefix) each — unless its grant already has one; the inserted
        ones' id and number by (tenant, grant key). Rows go in key order, so two deliveries
        inserting some of the same grants wait on each other rather than deadlock. One
        statement, one array per column; a column a row leaves out is null."""
        if not rows:
            return {}
        ordered = sorted(rows, key=lambda row: (row[0]["tenant_id"], row[0]["grant_key"]))
        params: dict[str, Any] = {"number_prefix": [prefix for _, prefix in ordered]}
        for column in _NEW_RECORD_COLUMNS:
            values = [row.get(column) for row, _ in ordered]
            params[column] = (
                [json_text(v) for v in values] if column in _JSON_COLUMNS else _sparse(values)
            )
        result = await self.session.execute(_INSERT_RECORDS, params)
        return {(tenant, key): (id_, number) for id_, number, tenant, key in result.all()}

    async def get(self, tenant_id: str, record_id: uuid.UUID) -> RewardRecord | None:
        return await self.session.scalar(
            select(RewardRecord).where(
                RewardRecord.tenant_id == tenant_id, RewardRecord.id == record_id
            )
        )

    async def by_ids(
        self, tenant_id: str, record_ids: builtins.list[uuid.UUID]
    ) -> dict[uuid.UUID, RewardRecord]:
        if not record_ids:
            return {}
        rows = await self.session.scalars(
            select(RewardRecord).where(
                RewardRecord.tenant_id == tenant_id, any_of(RewardRecord.id, set(record_ids))
            )
        )
        return {r.id: r for r in rows}

    async def get_by_id(self, record_id: uuid.UUID) -> RewardRecord | None:
        return await self.session.scalar(
            select(RewardRecord)
            .where(RewardRecord.id == record_id)
            .execution_options(populate_existing=True)
        )

    async def get_by_number(self, tenant_id: str, number: str) -> RewardRecord | None:
        return await self.session.scalar(
            select(RewardRecord).where(
                RewardRecord.tenant_id == tenant_id, RewardRecord.number == number
            )
        )

    async def lock_in_status(self, record_id: uuid.UUID, status: str) -> RewardRecord | None:
        """Row-lock the record if it is in ``status``: issuance of one record is serialized,
        so a redelivered job waits for the first and then finds nothing left to do."""
        return await self.session.scalar(
            select(RewardRecord)
            .where(RewardRecord.id == record_id, RewardRecord.status == status)
            .with_for_update()
            .execution_options(populate_existing=True)
        )

    async def compare_and_set(
        self,
        record_id: uuid.UUID,
        expected: str,
        values: dict[str, Any],
        at: datetime | None = None,
    ) -> RewardRecord | None:
        """Move the record only if it is still in ``expected``: two racing moves cannot
        both win. Returns the updated row, or None when another move got there first."""
        stmt = (
            update(RewardRecord)
            .where(RewardRecord.id == record_id, RewardRecord.status == expected)
            .values(
                **values,
                version=RewardRecord.version + 1,
                updated_at=at if at is not None else func.now(),
            )
            .returning(RewardRecord)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
        return (await self.session.scalars(stmt)).one_or_none()

    async def move_locked(
        self,
        record_ids: Collection[uuid.UUID],
        values: dict[str, Any],
        at: datetime,
        *,
        moves: int = 1,
        per_record: dict[str, dict[uuid.UUID, Any]] | None = None,
    ) -> builtins.list[RewardRecord]:
        """``compare_and_set`` of many records still Locked, in one statement: ``values``
        for all, ``per_record`` column → (record → value), the version up by ``moves``.
        Returns the records moved (the others had moved meanwhile)."""
        if not record_ids:
            return []
        r = RewardRecord
        each = {
            column: case(by_record, value=r.id, else_=getattr(r, column))
            for column, by_record in (per_record or {}).items()
        }
        stmt = (
            update(r)
            .where(any_of(r.id, record_ids), r.status == "locked")
            .values(**values, **each, version=r.version + moves, updated_at=at)
            .returning(r)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
        return list((await self.session.scalars(stmt)).all())

    async def settle_issued_locks(
        self, verdicts: dict[uuid.UUID, tuple[str, str | None]], at: datetime
    ) -> set[uuid.UUID]:
        """``settle_issued_lock`` of many records in one statement: record → (result,
        detail). Returns the records settled."""
        if not verdicts:
            return set()
        r = RewardRecord
        stmt = (
            update(r)
            .where(any_of(r.id, verdicts), r.status == "issued", r.lock_result.is_(None))
            .values(
                lock_result=case({k: v[0] for k, v in verdicts.items()}, value=r.id),
                lock_detail=case({k: v[1] for k, v in verdicts.items()}, value=r.id),
                lock_settled_at=at,
            )
            .returning(r.id)
            .execution_options(synchronize_session=False)
        )
        return set((await self.session.scalars(stmt)).all())

    async def touch(self, record_id: uuid.UUID, values: dict[str, Any]) -> None:
        """Bookkeeping columns that are not a state move (no version bump)."""
        await self.session.execute(
            update(RewardRecord)
            .where(RewardRecord.id == record_id)
            .values(**values)
            .execution_options(synchronize_session=False)
        )

    async def touch_many(
        self, record_ids: builtins.list[uuid.UUID], values: dict[str, Any]
    ) -> None:
        """``touch`` of many records in one statement."""
        await self.session.execute(
            update(RewardRecord)
            .where(any_of(RewardRecord.id, record_ids))
            .values(**values)
            .execution_options(synchronize_session=False)
        )

    def add_transition(self, transition: RecordTransition) -> None:
        self.session.add(transition)

    async def insert_transitions(self, rows: builtins.list[dict[str, Any]]) -> None:
        """Moves recorded together: one statement for them all, in order (a record's moves
        keep their order of ids)."""
        if rows:
            params = {c: _sparse([row.get(c) for row in rows]) for c in _TRANSITION_COLUMNS}
            await self.session.execute(_INSERT_TRANSITIONS, params)

    async def transitions(self, record_id: uuid.UUID) -> list[RecordTransition]:
        stmt = (
            select(RecordTransition)
            .where(RecordTransition.record_id == record_id)
            .order_by(RecordTransition.id)
        )
        return list((await self.session.scalars(stmt)).all())

    def _filtered(
        self,
        tenant_id: str,
        *,
        activity_code: str | None = None,
        status: str | None = None,
        user_id: str | None = None,
        task: str | None = None,
        prize_type: str | None = None,
        number: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        issued_since: datetime | None = None,
        issued_until: datetime | None = None,
        lock: str | None = None,
    ) -> Select[Any]:
        stmt = select(RewardRecord).where(RewardRecord.tenant_id == tenant_id)
        if activity_code:
            stmt = stmt.where(RewardRecord.activity_code == activity_code)
        if status:
            stmt = stmt.where(RewardRecord.status == status)
        if user_id:
            stmt = stmt.where(RewardRecord.user_id == user_id)
        if task:
            stmt = stmt.where(RewardRecord.task == task)
        if prize_type:
            stmt = stmt.where(RewardRecord.prize_type == prize_type)
        if number:
            stmt = stmt.where(RewardRecord.number == number)
        if since:
            stmt = stmt.where(RewardRecord.achieved_at >= since)
        if until:
            stmt = stmt.where(RewardRecord.achieved_at < until)
        if issued_since:
            stmt = stmt.where(RewardRecord.issued_at >= issued_since)
        if issued_until:
            stmt = stmt.where(RewardRecord.issued_at < issued_until)
        if lock == "running":
            stmt = stmt.where(
                RewardRecord.lock_result.is_(None),
                RewardRecord.lock_expires_at.is_not(None),
                RewardRecord.status.in_(("locked", "issued")),
            )
        elif lock:
            stmt = stmt.where(RewardRecord.lock_result == lock)
        return stmt

    async def list(
        self, tenant_id: str, params: PageParams, **filters: Any
    ) -> tuple[list[RewardRecord], str | None]:
        return await paginate(
            self.session, self._filtered(tenant_id, **filters), RewardRecord, params
        )

    async def stream(
        self, tenant_id: str, chunk: int = 1000, **filters: Any
    ) -> AsyncIterator[builtins.list[RewardRecord]]:
        """Every matching record, oldest first, in keyset chunks (CSV export)."""
        base = self._filtered(tenant_id, **filters)
        after: tuple[datetime, uuid.UUID] | None = None
        while True:
            stmt = base
            if after is not None:
                at, row_id = after
                stmt = stmt.where(
                    or_(
                        RewardRecord.created_at > at,
                        and_(RewardRecord.created_at == at, RewardRecord.id > row_id),
                    )
                )
            rows = list(
                (
                    await self.session.scalars(
                        stmt.order_by(RewardRecord.created_at, RewardRecord.id).limit(chunk)
                    )
                ).all()
            )
            if not rows:
                return
            yield rows
            if len(rows) < chunk:
                return
            after = (rows[-1].created_at, rows[-1].id)

    async def count_by_status(self, tenant_id: str, activity_code: str | None) -> dict[str, int]:
        stmt = select(RewardRecord.status, func.count()).where(RewardRecord.tenant_id == tenant_id)
        if activity_code:
            stmt = stmt.where(RewardRecord.activity_code == activity_code)
        rows = await self.session.execute(stmt.group_by(RewardRecord.status))
        return {status: int(n) for status, n in rows.all()}

    async def count_locked(self, tenant_id: str, activity_code: str | None) -> int:
        """锁仓中: records inside their lock period — waiting Locked, or issued at once with
        the lock still running (``lockup.is_running``)."""
        stmt = select(func.count()).where(
            RewardRecord.tenant_id == tenant_id,
            RewardRecord.lock_result.is_(None),
            RewardRecord.lock_expires_at.is_not(None),
            RewardRecord.status.in_(("locked", "issued")),
        )
        if activity_code:
            stmt = stmt.where(RewardRecord.activity_code == activity_code)
        return int(await self.session.scalar(stmt) or 0)

    async def issued_costs(
        self, tenant_id: str, activity_code: str
    ) -> builtins.list[tuple[str, str | None, int, Any]]:
        """(prize type, currency, records, summed cost) of the activity's Issued records.

        Cash: what the payout carried (fixed when it was paid), else the prize's amount;
        coupons and physical items: the prize's cost. A prize without a cost gives a row
        with currency and sum NULL, so those records are counted, not hidden."""
        amount = func.coalesce(CashPayout.amount, Prize.cost_amount)
        currency = func.coalesce(CashPayout.currency, Prize.cost_currency)
        stmt = (
            select(RewardRecord.prize_type, currency, func.count(), func.sum(amount))
            .select_from(RewardRecord)
            .outerjoin(CashPayout, CashPayout.record_id == RewardRecord.id)
            .outerjoin(Prize, and_(Prize.id == RewardRecord.prize_id, Prize.tenant_id == tenant_id))
            .where(
                RewardRecord.tenant_id == tenant_id,
                RewardRecord.activity_code == activity_code,
                RewardRecord.status == "issued",
            )
            .group_by(RewardRecord.prize_type, currency)
            .order_by(RewardRecord.prize_type, currency)
        )
        rows = await self.session.execute(stmt)
        return [(t, c, int(n), total) for t, c, n, total in rows.all()]

    async def invitation_totals(
        self, tenant_id: str, user_id: str
    ) -> tuple[builtins.list[tuple[str, str | None, int, int, Any, Any]], int]:
        """The user's rewards as an inviter, cancelled ones left out: per (prize type,
        currency) the records, the Issued ones and their summed values — valued as the
        activity costs are (cash: the amount paid, else the prize's amount; coupons and
        physical items: the prize's cost; no cost → currency and sums NULL) — and the
        distinct invitees they were earned for. Starts from ix_reward_records_tenant_inviter:
        the cost follows this user's own referral rewards."""
        issued = RewardRecord.status == "issued"
        amount = func.coalesce(CashPayout.amount, Prize.cost_amount)
        currency = func.coalesce(CashPayout.currency, Prize.cost_currency)
        mine = (
            RewardRecord.tenant_id == tenant_id,
            RewardRecord.user_id == user_id,
            RewardRecord.referral_role == "inviter",
            RewardRecord.status != "cancelled",
        )
        stmt = (
            select(
                RewardRecord.prize_type,
                currency,
                func.count(),
                func.count().filter(issued),
                func.sum(amount),
                func.sum(amount).filter(issued),
            )
            .select_from(RewardRecord)
            .outerjoin(CashPayout, CashPayout.record_id == RewardRecord.id)
            .outerjoin(Prize, and_(Prize.id == RewardRecord.prize_id, Prize.tenant_id == tenant_id))
            .where(*mine)
            .group_by(RewardRecord.prize_type, currency)
            .order_by(RewardRecord.prize_type, currency)
        )
        rows: builtins.list[tuple[str, str | None, int, int, Any, Any]] = [
            (t, c, int(n), int(i), total, issued_total)
            for t, c, n, i, total, issued_total in (await self.session.execute(stmt)).all()
        ]
        invitees = await self.session.scalar(
            select(func.count(func.distinct(RewardRecord.counterpart_id))).where(*mine)
        )
        return rows, int(invitees or 0)

    async def distinct_users(self, tenant_id: str, activity_code: str) -> tuple[int, int]:
        """(users with any record, users with an Issued record) under the activity code."""
        issued = RewardRecord.status == "issued"
        stmt = select(
            func.count(func.distinct(RewardRecord.user_id)),
            func.count(func.distinct(RewardRecord.user_id)).filter(issued),
        ).where(RewardRecord.tenant_id == tenant_id, RewardRecord.activity_code == activity_code)
        users, issued_users = (await self.session.execute(stmt)).one()
        return int(users), int(issued_users)

    # --- the reconciler's questions (across tenants: it is the platform's own job) ---

    @staticmethod
    def _of(tenants: TenantScope) -> Any:
        """The records of a reconciler pass: one sandbox tenant's (its advance), or every
        tenant's but the sandboxes' (the cron: sandbox time is not the system's)."""
        only, skip = tenants
        if only is not None:
            return RewardRecord.tenant_id == only
        return RewardRecord.tenant_id.not_in(skip) if skip else true()

    async def claim_stuck_issuing(
        self,
        now: datetime,
        older_than: datetime,
        limit: int,
        max_gap: timedelta,
        tenants: TenantScope = (None, ()),
    ) -> builtins.list[RewardRecord]:
        """Records in Issuing since before ``older_than``; rows being issued right now are
        locked by their job and skipped.

        Re-drives back off: the next one waits at least as long as the record had waited at
        the previous one (so deadline, 2×, 4×, … capped at ``max_gap``). A backlog of merely
        queued jobs then does not snowball into more and more duplicate jobs."""
        since_redrive = literal(now, DateTime(timezone=True)) - RewardRecord.redriven_at
        stmt = (
            select(RewardRecord)
            .where(
                self._of(tenants),
                RewardRecord.status == "issuing",
                RewardRecord.updated_at <= older_than,
                or_(
                    RewardRecord.redriven_at.is_(None),
                    and_(
                        RewardRecord.redriven_at <= older_than,
                        or_(
                            since_redrive >= RewardRecord.redriven_at - RewardRecord.updated_at,
                            since_redrive >= max_gap,
                        ),
                    ),
                ),
            )
            .order_by(RewardRecord.updated_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return list((await self.session.scalars(stmt)).all())

    async def claim_unsubmitted_automatic(
        self, older_than: datetime, limit: int, tenants: TenantScope = (None, ())
    ) -> builtins.list[RewardRecord]:
        stmt = (
            select(RewardRecord)
            .where(
                self._of(tenants),
                RewardRecord.status == "pending",
                RewardRecord.issuance_form == "automatic",
                RewardRecord.updated_at <= older_than,
            )
            .order_by(RewardRecord.updated_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return list((await self.session.scalars(stmt)).all())

    async def due_locks(
        self, now: datetime, checked_before: datetime, limit: int, tenants: TenantScope = (None, ())
    ) -> builtins.list[RewardRecord]:
        """Lock-ups expired by ``now`` and not settled: records waiting Locked and rewards
        issued at once (a record cancelled or failed meanwhile has nothing left to check)."""
        stmt = (
            select(RewardRecord)
            .where(
                self._of(tenants),
                RewardRecord.lock_result.is_(None),
                RewardRecord.lock_expires_at.is_not(None),
                RewardRecord.lock_expires_at <= now,
                RewardRecord.status.in_(("locked", "issued")),
                or_(
                    RewardRecord.lock_checked_at.is_(None),
                    RewardRecord.lock_checked_at <= checked_before,
                ),
            )
            .order_by(RewardRecord.lock_expires_at)
            .limit(limit)
        )
        return list((await self.session.scalars(stmt)).all())

    async def settle_issued_lock(self, record_id: uuid.UUID, verdict: dict[str, Any]) -> bool:
        """Keep the lock-up verdict of an issued reward, once (a concurrent pass that got
        there first wins). Not a state move: the record stays Issued, its version too."""
        stmt = (
            update(RewardRecord)
            .where(
                RewardRecord.id == record_id,
                RewardRecord.status == "issued",
                RewardRecord.lock_result.is_(None),
            )
            .values(**verdict)
            .returning(RewardRecord.id)
            .execution_options(synchronize_session=False)
        )
        return (await self.session.execute(stmt)).scalar_one_or_none() is not None
