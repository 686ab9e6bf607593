"""Set-based SQL of the daily run: the grants, cap slots, outcomes and outbox messages of a
chunk of users, each kind of row written by one multi-row statement. The guarantees are
those of the per-user statements in ``repository.py``: a grant is unique on its key, a cap
slot is taken by a conditional upsert, and an outbox message is written only with the grant
it announces."""

from __future__ import annotations

import json
import secrets
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from activity_service.evaluation.limits import fit_in_budget
from contracts.payloads import GRANT_BUNDLE_COLUMNS
from service_kit.correlation import stamp
from service_kit.db import plan_for_parameters

OutcomeRow = tuple[uuid.UUID, str, str, str, str | None]
"""(activity id, user id, rule id, outcome, detail) of an evaluation outcome."""

_LOCK_USERS = """
SELECT pg_advisory_xact_lock(hashtextextended(CAST(:tenant_id AS text) || '/' || u.id, 0))
FROM (SELECT id FROM unnest(CAST(:user_ids AS text[])) WITH ORDINALITY AS t(id, n)
      ORDER BY n) AS u
"""

# Reads by user probe the index once per user (a LATERAL subquery kept as such by OFFSET 0),
# whatever the statistics say: a table filled by the run itself has stale ones, and a join
# or ``user_id = ANY(…)`` planned for "a few rows" turns quadratic on a big chunk.
_NEW_USER_REWARDS = """
SELECT u.id, g.activity_id, g.achieved_at
FROM unnest(CAST(:user_ids AS text[])) AS u(id)
CROSS JOIN LATERAL (
    SELECT activity_id, achieved_at FROM grants
    WHERE tenant_id = :tenant_id AND user_id = u.id AND new_user_reward
      AND record_status <> 'cancelled' OFFSET 0
) AS g
"""

# The grants the chunk's users already have in the pass's activities, one probe per user.
_EXISTING_GRANTS = """
SELECT g.activity_id, g.grant_key, g.user_id, g.settlement, g.rule_id
FROM unnest(CAST(:user_ids AS text[])) AS u(id)
CROSS JOIN LATERAL (
    SELECT activity_id, grant_key, user_id, settlement, rule_id FROM grants
    WHERE tenant_id = :tenant_id AND user_id = u.id
      AND activity_id = ANY(CAST(:activity_ids AS uuid[]))
    OFFSET 0
) AS g
"""

_CLAIM_CAP_SLOTS = """
INSERT INTO prize_cap_counters AS c (tenant_id, activity_id, user_id, prize_id, count)
SELECT CAST(:tenant_id AS text), CAST(:activity_id AS uuid), u, CAST(:prize_id AS uuid), 1
FROM unnest(CAST(:user_ids AS text[])) AS u
ON CONFLICT (tenant_id, activity_id, user_id, prize_id)
DO UPDATE SET count = c.count + 1 WHERE c.count < :cap
RETURNING c.user_id, c.count
"""

_RELEASE_CAP_SLOTS = """
UPDATE prize_cap_counters AS c SET count = c.count - r.n
FROM unnest(CAST(:user_ids AS text[]), CAST(:counts AS int[])) AS r(user_id, n)
WHERE c.tenant_id = :tenant_id AND c.activity_id = :activity_id AND c.prize_id = :prize_id
  AND c.user_id = r.user_id
"""

# A counter row exists and is row-locked before a chunk decides how much of it is left: the
# chunk's transaction then holds it, as one real-time grant would for its single unit.
_LOCK_TOTAL = """
INSERT INTO prize_total_counters AS c (tenant_id, activity_id, prize_id, count, total)
VALUES (:tenant_id, :activity_id, :prize_id, 0, :total)
ON CONFLICT (tenant_id, activity_id, prize_id) DO UPDATE SET count = c.count
RETURNING c.count
"""

_TAKE_TOTAL = """
UPDATE prize_total_counters SET count = count + :n, total = :total
WHERE tenant_id = :tenant_id AND activity_id = :activity_id AND prize_id = :prize_id
  AND count + :n <= :total
RETURNING count
"""

_RELEASE_TOTAL = """
UPDATE prize_total_counters SET count = GREATEST(count - :n, 0)
WHERE tenant_id = :tenant_id AND activity_id = :activity_id AND prize_id = :prize_id
"""

_LOCK_BUDGET = """
INSERT INTO activity_budget_spend AS b (tenant_id, activity_id, spent, budget)
VALUES (:tenant_id, :activity_id, 0, :budget)
ON CONFLICT (tenant_id, activity_id) DO UPDATE SET spent = b.spent
RETURNING b.spent
"""

_TAKE_BUDGET = """
UPDATE activity_budget_spend SET spent = spent + :amount, budget = :budget
WHERE tenant_id = :tenant_id AND activity_id = :activity_id AND spent + :amount <= :budget
RETURNING spent
"""

_RELEASE_BUDGET = """
UPDATE activity_budget_spend SET spent = GREATEST(spent - :amount, 0)
WHERE tenant_id = :tenant_id AND activity_id = :activity_id
"""

# One activity's new grants of a chunk, announced by outbox messages that each carry up to
# ``GRANTS_PER_MESSAGE`` of them (``contracts.payloads.grants_of_message``): the bundle's
# head (tenant, columns, the rules' templates, validated once per rule) is sent once, and
# each inserted grant adds one row of its own values, built in SQL, so no per-grant
# document crosses the wire and no message row is written per grant. The grant row keeps
# only its columns. The grants' ids are time-ordered (``_id_base``): a random id sent each
# row's primary-key entry to a random leaf of an index that outgrows the buffer cache.
_INSERT_GRANTS = """
WITH batch AS (
    SELECT * FROM unnest(
        {grant_keys}, {user_ids}, {app_ids}, CAST({rule_indexes} AS int[]), {tasks},
        CAST(:achieved_ats AS timestamptz[]), CAST(:enterprise_names AS text[]),
        CAST(:settlements AS text[]), CAST(:cap_slots AS boolean[]),
        CAST(:total_slots AS boolean[]), CAST(:budget_costs AS numeric[])
    ) WITH ORDINALITY AS r(grant_key, user_id, app_id, rule_index, task, achieved_at,
                           enterprise_name, settlement, cap_slot, total_slot, budget_cost, n)
), rules AS (
    SELECT n - 1 AS rule_index, template ->> 'rule_id' AS rule_id,
           CAST(template ->> 'prize_id' AS uuid) AS prize_id
    FROM jsonb_array_elements(CAST(:bundle AS jsonb) -> 'templates') WITH ORDINALITY
         AS t(template, n)
), inserted AS (
    INSERT INTO grants (id, tenant_id, grant_key, activity_id, activity_code, rule_id, user_id,
                        counterpart_id, task, achieved_at, prize_id, source_event_id,
                        new_user_reward, settlement, record_status, cap_slot, total_slot,
                        budget_cost)
    SELECT CAST(CAST(:id_head AS text) || to_hex(CAST(:id_tail AS bigint) + b.n) AS uuid),
           CAST(:tenant_id AS text), b.grant_key,
           CAST(:activity_id AS uuid), CAST(:activity_code AS text), t.rule_id, b.user_id, NULL,
           b.task, b.achieved_at, t.prize_id, NULL, CAST(:new_user_reward AS boolean),
           b.settlement, 'granted', COALESCE(b.cap_slot, false),
           COALESCE(b.total_slot, false), b.budget_cost
    FROM batch AS b JOIN rules AS t ON t.rule_index = b.rule_index
    -- a key already granted, or an at-end settlement whose one tier is already paid
    ON CONFLICT {arbiter} DO NOTHING
    RETURNING grant_key
), bundles AS (
    -- only the grants inserted are announced, in the chunk's order (the time as JSON's
    -- ISO 8601, as the contract reads it)
    SELECT gen_random_uuid() AS id, min(b.grant_key) AS first_key,
           jsonb_agg(jsonb_build_array(b.grant_key, b.user_id, b.app_id, b.rule_index,
                                       b.task, b.achieved_at, b.enterprise_name)
                     ORDER BY b.n) AS grants
    FROM inserted AS i JOIN batch AS b ON b.grant_key = i.grant_key
    GROUP BY (b.n - 1) / CAST(:per_message AS int)
), messages AS (
    INSERT INTO outbox_messages (id, queue, job_name, job_id, payload, attempts)
    SELECT id, CAST(:queue AS text), CAST(:job_name AS text), left('grants:' || first_key, 200),
           CAST(:bundle AS jsonb) || jsonb_build_object('grants', grants), 0
    FROM bundles
)
-- the grants not inserted (usually none): fewer rows back than the inserted keys
SELECT b.grant_key FROM batch AS b
WHERE NOT EXISTS (SELECT FROM inserted AS i WHERE i.grant_key = b.grant_key)
"""

GRANTS_PER_MESSAGE = 25
"""Grants announced per outbox message: a reward transaction's worth
(``reward_service.records.tasks.GRANTS_PER_TRANSACTION``). A relay delivery takes up to a
hundred messages, so a reward job gets at most 2,500 grants, which its ten tries of a
10-second budget finish at 25 grants a second; a message row per 25 grants is already a
small part of the grants' own writes."""

_JOINED_COLUMNS = ("grant_keys", "user_ids", "app_ids", "rule_indexes", "tasks")
"""The batch's columns sent as one text each (``_joined``), split by ``string_to_array``:
the driver encodes an array element by element (a type check and a copy per value), and
these were most of the Python time of the insert; joining strings is one C call."""

_SEPARATOR = "\x1f"  # ASCII unit separator, between the values of a joined column
_NULL = "\x1e"  # ASCII record separator: a null value of a joined column


def _insert_grants(arbiter: str, joined: bool) -> Any:
    columns = {
        name: (
            f"string_to_array(CAST(:{name} AS text), E'\\x1f', E'\\x1e')"
            if joined
            else f"CAST(:{name} AS text[])"
        )
        for name in _JOINED_COLUMNS
    }
    return text(_INSERT_GRANTS.format(arbiter=arbiter, **columns))


# Grants without a settlement can only conflict on their key: naming that one arbiter
# spares the other unique indexes' checks (the random id's above all) for every row.
# (arbiter, columns joined) → the statement.
_INSERTS = {
    (settles, joined): _insert_grants("" if settles else "(tenant_id, grant_key)", joined)
    for settles in (False, True)
    for joined in (False, True)
}


_ID_SPAN = 1 << 32
"""Ids one insert may number from its base (far more rows than a chunk has)."""


def _id_base() -> tuple[str, int]:
    """The first id of one grant insert, whose n-th row gets the id ``head`` followed by
    the 16 hex digits of ``tail + n``: the UUID version 7 layout (the Unix time in
    milliseconds, then random bits), so the ids of a run grow as it goes and their index
    entries land on its right edge, as a sequence's would, while ids made at once on other
    connections or by other processes still differ in their 74 random bits. ``tail`` is
    the low 64 bits — the variant bits ``10`` and 62 random ones, short enough of the top
    that adding a row number never reaches the variant — as a signed bigint, so it is
    negative and ``to_hex`` always writes all 16 digits."""
    millis = time.time_ns() // 1_000_000
    head = f"{millis & 0xFFFF_FFFF_FFFF:012x}7{secrets.randbits(12):03x}"
    low = (0b10 << 62) | secrets.randbelow((1 << 62) - _ID_SPAN)
    return head, low - (1 << 64)


def _joined(values: list[str | None]) -> str | None:
    """A text column as one string of its values (a null as ``_NULL``), or None when it
    cannot be: a value holds a separator itself, or the string would be empty (which
    ``string_to_array`` reads as no values at all)."""
    nulls = 0
    parts: list[str] = []
    for value in values:
        if value is None:
            nulls += 1
            parts.append(_NULL)
        else:
            parts.append(value)
    joined = _SEPARATOR.join(parts)
    if not joined or joined.count(_SEPARATOR) != len(values) - 1 or joined.count(_NULL) != nulls:
        return None
    return joined


_RECORD_OUTCOMES = """
INSERT INTO evaluation_outcomes AS o (tenant_id, activity_id, user_id, rule_id, outcome, detail,
                                      at)
SELECT CAST(:tenant_id AS text), r.activity_id, r.user_id, r.rule_id, r.outcome, r.detail,
       CAST(:at AS timestamptz)
FROM unnest(CAST(:activity_ids AS uuid[]), CAST(:user_ids AS text[]), CAST(:rule_ids AS text[]),
            CAST(:outcomes AS text[]), CAST(:details AS text[]))
     AS r(activity_id, user_id, rule_id, outcome, detail)
ON CONFLICT (tenant_id, activity_id, user_id, rule_id)
DO UPDATE SET outcome = excluded.outcome, detail = excluded.detail, at = excluded.at,
              recorded_at = now()
"""


def _sparse(values: list[Any]) -> list[Any]:
    """A column most chunks leave empty is sent as an empty array when it is: ``unnest``
    of several arrays pads the shorter ones with nulls, so nothing is encoded for it."""
    return values if any(v is not None for v in values) else []


def _bundle_head(grants: NewGrants) -> str:
    """The part of the chunk's grant messages every message shares, as JSON: the tenant,
    the row columns, the rules' templates without the values each row sets, and the run's
    request id (as ``OutboxRepository.add`` stamps a message)."""
    per_row = set(GRANT_BUNDLE_COLUMNS)
    head = {
        "tenant_id": grants.tenant_id,
        "columns": list(GRANT_BUNDLE_COLUMNS),
        "templates": [{k: v for k, v in t.items() if k not in per_row} for t in grants.templates],
    }
    return json.dumps(stamp(head), separators=(",", ":"))


class NewGrant(NamedTuple):
    """One grant of a chunk; its payload is its rule's template with these values."""

    grant_key: str
    user_id: str
    app_id: str | None
    rule_index: int  # into ``NewGrants.templates``
    task: str
    achieved_at: datetime
    enterprise_name: str | None = None
    settlement: str | None = None  # the task, for the one at-end tier of a cumulative task
    cap_slot: bool = False
    total_slot: bool = False
    budget_cost: Decimal | None = None


@dataclass
class NewGrants:
    """One activity's new grants of a chunk. ``templates`` are the rules' grant payloads
    (JSON-ready, ``rule_id`` and ``prize_id`` included); each grant's message payload is
    its template with its key, user, app, task, achieved time and enterprise name set."""

    tenant_id: str
    activity_id: uuid.UUID
    activity_code: str
    new_user_reward: bool
    templates: list[dict[str, Any]]
    rows: list[NewGrant] = field(default_factory=list)


@dataclass
class ExistingGrants:
    keys: set[str] = field(default_factory=set)
    # (activity, user, task) → the rule (tier) an at-end settlement paid
    settled: dict[tuple[uuid.UUID, str, str], str] = field(default_factory=dict)


class DailyRunRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @classmethod
    def from_session(cls, session: AsyncSession) -> DailyRunRepository:
        return cls(session)

    async def plan_each_statement(self) -> None:
        """Plan this transaction's statements for their actual parameters: a chunk's
        statements repeat with other arrays, and a generic plan cached for them may guess
        wrong about how many rows an array brings."""
        await plan_for_parameters(self.session)

    async def hold_order_lock(self, key: int) -> None:
        """Take (or wait for) an advisory lock held until this transaction ends: a daily-run
        chunk holds its own, and the chunk after it waits for it before saving the cursor,
        so chunks written at once commit in order (and PostgreSQL sees that wait)."""
        await self.session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})

    async def lock_users(self, tenant_id: str, user_ids: Sequence[str]) -> None:
        """``GrantRepository.lock_user`` for many users (the same advisory lock keys), taken
        in sorted order so two runs locking overlapping sets cannot deadlock."""
        if user_ids:
            await self.session.execute(
                text(_LOCK_USERS), {"tenant_id": tenant_id, "user_ids": sorted(set(user_ids))}
            )

    async def new_user_rewards(
        self, tenant_id: str, user_ids: Sequence[str]
    ) -> list[tuple[str, uuid.UUID, datetime]]:
        """(user, activity, achieved at) of the users' new-user rewards."""
        if not user_ids:
            return []
        rows = await self.session.execute(
            text(_NEW_USER_REWARDS), {"tenant_id": tenant_id, "user_ids": list(user_ids)}
        )
        return [(row[0], row[1], row[2]) for row in rows.all()]

    async def existing_grants(
        self, tenant_id: str, activity_ids: Sequence[uuid.UUID], user_ids: Sequence[str]
    ) -> ExistingGrants:
        """The users' grants in these activities: their keys, and the tier (rule) each at-end
        settlement paid per (activity, user, task)."""
        found = ExistingGrants()
        if not user_ids or not activity_ids:
            return found
        rows = await self.session.execute(
            text(_EXISTING_GRANTS),
            {
                "tenant_id": tenant_id,
                "activity_ids": list(activity_ids),
                "user_ids": list(user_ids),
            },
        )
        for activity_id, key, user_id, settlement, rule_id in rows.all():
            found.keys.add(key)
            if settlement is not None:
                found.settled[(activity_id, user_id, settlement)] = rule_id
        return found

    async def claim_cap_slots(
        self,
        tenant_id: str,
        activity_id: uuid.UUID,
        prize_id: uuid.UUID,
        cap: int,
        user_ids: Sequence[str],
    ) -> set[str]:
        """One slot of the ``cap`` of (activity, user, prize) for each of the (distinct)
        users: one conditional upsert, row-locked like ``claim_cap_slot``. Returns the users
        who got a slot."""
        if not user_ids or cap <= 0:
            return set()
        rows = await self.session.execute(
            text(_CLAIM_CAP_SLOTS),
            {
                "tenant_id": tenant_id,
                "activity_id": activity_id,
                "prize_id": prize_id,
                "cap": cap,
                "user_ids": list(user_ids),
            },
        )
        return {row[0] for row in rows.all() if row[1] <= cap}

    async def release_cap_slots(
        self,
        tenant_id: str,
        activity_id: uuid.UUID,
        prize_id: uuid.UUID,
        counts: Mapping[str, int],
    ) -> None:
        """Give back slots taken in this transaction for grants that were not inserted."""
        if not counts:
            return
        await self.session.execute(
            text(_RELEASE_CAP_SLOTS),
            {
                "tenant_id": tenant_id,
                "activity_id": activity_id,
                "prize_id": prize_id,
                "user_ids": list(counts),
                "counts": list(counts.values()),
            },
        )

    async def take_total(
        self, tenant_id: str, activity_id: uuid.UUID, prize_id: uuid.UUID, total: int, n: int
    ) -> int:
        """Up to ``n`` of the prize's ``total`` over the activity; returns how many were
        taken (the first ones asked for get them)."""
        keys = {"tenant_id": tenant_id, "activity_id": activity_id, "prize_id": prize_id}
        count = (
            await self.session.execute(text(_LOCK_TOTAL), {**keys, "total": total})
        ).scalar_one()
        taken = max(0, min(n, total - int(count)))
        if taken:
            # Conditional all the same, and the row's CHECK holds it within its total.
            done = await self.session.execute(
                text(_TAKE_TOTAL), {**keys, "total": total, "n": taken}
            )
            if done.scalar_one_or_none() is None:
                return 0
        return taken

    async def release_total(
        self, tenant_id: str, activity_id: uuid.UUID, prize_id: uuid.UUID, n: int
    ) -> None:
        await self.session.execute(
            text(_RELEASE_TOTAL),
            {"tenant_id": tenant_id, "activity_id": activity_id, "prize_id": prize_id, "n": n},
        )

    async def take_budget(
        self,
        tenant_id: str,
        activity_id: uuid.UUID,
        budget: Decimal,
        asks: Sequence[tuple[str, Decimal]],
    ) -> set[str]:
        """The costs, asked in this order, that the rest of the activity's budget covers
        (``limits.fit_in_budget``), taken together; returns their keys."""
        keys = {"tenant_id": tenant_id, "activity_id": activity_id}
        spent = (
            await self.session.execute(text(_LOCK_BUDGET), {**keys, "budget": budget})
        ).scalar_one()
        taken, amount = fit_in_budget(Decimal(spent), budget, list(asks))
        if taken:
            done = await self.session.execute(
                text(_TAKE_BUDGET), {**keys, "budget": budget, "amount": amount}
            )
            if done.scalar_one_or_none() is None:
                return set()
        return set(taken)

    async def release_budget(self, tenant_id: str, activity_id: uuid.UUID, amount: Decimal) -> None:
        await self.session.execute(
            text(_RELEASE_BUDGET),
            {"tenant_id": tenant_id, "activity_id": activity_id, "amount": amount},
        )

    async def insert_grants(
        self,
        grants: NewGrants,
        queue: str,
        job_name: str,
    ) -> set[str]:
        """Insert the grants whose keys are new and announce them in ``reward.create_from_grant``
        messages of up to ``GRANTS_PER_MESSAGE`` grants each (job id ``grants:`` + the first
        key), in one statement. Returns the keys inserted."""
        rows = grants.rows
        if not rows:
            return set()
        columns: dict[str, list[Any]] = {
            "grant_keys": [r.grant_key for r in rows],
            "user_ids": [r.user_id for r in rows],
            "app_ids": [r.app_id for r in rows],
            "rule_indexes": [str(r.rule_index) for r in rows],
            "tasks": [r.task for r in rows],
        }
        texts = {name: _joined(values) for name, values in columns.items()}
        joined = all(t is not None for t in texts.values())
        settles = any(r.settlement for r in rows)
        id_head, id_tail = _id_base()
        result = await self.session.execute(
            _INSERTS[(settles, joined)],
            {
                **(texts if joined else columns),
                "tenant_id": grants.tenant_id,
                "activity_id": grants.activity_id,
                "activity_code": grants.activity_code,
                "new_user_reward": grants.new_user_reward,
                "bundle": _bundle_head(grants),
                "per_message": GRANTS_PER_MESSAGE,
                "achieved_ats": [r.achieved_at for r in rows],
                "enterprise_names": _sparse([r.enterprise_name for r in rows]),
                "settlements": _sparse([r.settlement for r in rows]),
                "cap_slots": _sparse([r.cap_slot or None for r in rows]),
                "total_slots": _sparse([r.total_slot or None for r in rows]),
                "budget_costs": _sparse([r.budget_cost for r in rows]),
                "queue": queue,
                "job_name": job_name,
                "id_head": id_head,
                "id_tail": id_tail,
            },
        )
        not_inserted = set(result.scalars().all())
        return {r.grant_key for r in rows if r.grant_key not in not_inserted}

    async def record_outcomes(
        self, tenant_id: str, outcomes: Sequence[OutcomeRow], at: datetime
    ) -> None:
        """The latest outcome per (activity, user, rule); one row per key in ``outcomes``."""
        if not outcomes:
            return
        await self.session.execute(
            text(_RECORD_OUTCOMES),
            {
                "tenant_id": tenant_id,
                "at": at,
                "activity_ids": [o[0] for o in outcomes],
                "user_ids": [o[1] for o in outcomes],
                "rule_ids": [o[2] for o in outcomes],
                "outcomes": [o[3] for o in outcomes],
                "details": [(o[4] or "")[:500] or None for o in outcomes],
            },
        )
