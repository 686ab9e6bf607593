from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from referral_service.bindings.models import Binding, BindingHistory, NodeCompletion
from service_kit.db import OUTBOX_WRITTEN, any_of, json_text
from service_kit.errors import Conflict
from service_kit.pagination import PageParams, paginate

# Upper bound of any chain walk: far beyond real referral depths, and a hard stop should a
# loop ever exist in the data.
MAX_CHAIN_DEPTH = 10_000
DEADLOCK_DETECTED = "40P01"

# The chunk statements take their rows as one array per column: every chunk is the same
# statement whatever its size, compiled and prepared once (a multi-row VALUES list is a
# statement of its own per row count), and no ORM object is built per row.
#
# Binds the new registration inviters and writes the history row of each binding made (a
# bound invitee is skipped); with every one made, the outbox message telling of them all.
_BIND_NEW = text(
    """
WITH bound AS (
    INSERT INTO bindings (id, tenant_id, invitee_id, inviter_id, node, channel, app_id,
                          activity_code, bound_at, created_at, updated_at)
    SELECT gen_random_uuid(), :tenant, invitee_id, inviter_id, :node, channel, app_id,
           activity_code, at, at, at
    FROM unnest(
        CAST(:invitees AS text[]), CAST(:inviters AS text[]), CAST(:channels AS text[]),
        CAST(:apps AS text[]), CAST(:activity_codes AS text[]), CAST(:at AS timestamptz[])
    ) AS t(invitee_id, inviter_id, channel, app_id, activity_code, at)
    ON CONFLICT (tenant_id, invitee_id, node) DO NOTHING
    RETURNING invitee_id, inviter_id, channel, activity_code, bound_at
), history AS (
    INSERT INTO binding_history (tenant_id, invitee_id, node, action, inviter_id, channel,
                                 activity_code, actor, at)
    SELECT :tenant, invitee_id, :node, 'bound', inviter_id, channel, activity_code, :actor,
           bound_at
    FROM bound
), outbox AS (
    INSERT INTO outbox_messages (id, queue, job_name, job_id, payload, attempts)
    SELECT id, :queue, :job_name, CAST(id AS text), CAST(:message AS jsonb), 0
    FROM (SELECT gen_random_uuid() AS id) AS m
    WHERE (SELECT count(*) FROM bound) = :count
)
SELECT invitee_id FROM bound
"""
)
_INSERT_COMPLETIONS = text(
    """
INSERT INTO node_completions (tenant_id, user_id, node, completed_at, event_id)
SELECT * FROM unnest(
    CAST(:tenants AS text[]), CAST(:users AS text[]), CAST(:nodes AS text[]),
    CAST(:at AS timestamptz[]), CAST(:events AS text[])
)
ON CONFLICT (tenant_id, user_id, node) DO NOTHING
RETURNING tenant_id, user_id, node
"""
)
# Reads by user probe the unique index once per user (a LATERAL subquery kept as such by
# OFFSET 0), whatever the statistics say: without them, ``user_id = ANY(…)`` was planned as
# a filter of every completion of the tenant at the node.
_COMPLETION_EVENTS = text(
    """
SELECT k.tenant_id, k.user_id, c.event_id
FROM unnest(CAST(:tenants AS text[]), CAST(:users AS text[])) AS k(tenant_id, user_id)
CROSS JOIN LATERAL (
    SELECT event_id FROM node_completions
    WHERE tenant_id = k.tenant_id AND user_id = k.user_id AND node = :node
    OFFSET 0
) AS c
"""
)
# Every start user's walk at every node (``effective_ancestors_of``).
_CHAINS = f"""
WITH RECURSIVE chain(start, node, user_id, depth) AS (
    SELECT s, n, s, 0
    FROM unnest(CAST(:starts AS text[])) s
    CROSS JOIN unnest(CAST(:nodes AS text[])) n
    UNION ALL
    SELECT chain.start, chain.node, step.inviter_id, chain.depth + 1
    FROM chain
    CROSS JOIN LATERAL (
        SELECT b.inviter_id FROM bindings b
        WHERE b.tenant_id = :tenant AND b.invitee_id = chain.user_id
          AND b.node IN (chain.node, 'registration')
        ORDER BY b.node = chain.node DESC
        LIMIT 1
    ) AS step
    WHERE chain.depth < {MAX_CHAIN_DEPTH}
)
"""
_EFFECTIVE_CHAINS = text(
    _CHAINS
    + """
SELECT start, node, user_id FROM chain WHERE depth > 0
ORDER BY start, node, depth
"""
)
# The walks, and per user of ``users``: bound at ``node`` as an invitee, and when they
# completed it; a row of the latter has no node. Each a scalar subquery probing the unique
# index once per user: the bindings' by (tenant, invitee) alone, the node tested on its at
# most three rows (on a table without statistics, a test of the node in the condition was
# planned as a scan of the node's index, every binding at the node read per user).
_CHAINS_AND_STATES = text(
    _CHAINS
    + """
SELECT start, node, user_id, CAST(NULL AS boolean), CAST(NULL AS timestamptz), depth
FROM chain WHERE depth > 0
UNION ALL
SELECT u.user_id, NULL, NULL,
       COALESCE((SELECT bool_or(b.node = :node) FROM bindings b
                 WHERE b.tenant_id = :tenant AND b.invitee_id = u.user_id), false),
       (SELECT c.completed_at FROM node_completions c
        WHERE c.tenant_id = :tenant AND c.user_id = u.user_id AND c.node = :node),
       0
FROM unnest(CAST(:users AS text[])) AS u(user_id)
ORDER BY 1, 2, 6
"""
)
_LOCK_MODES = text(
    "SELECT CASE WHEN x THEN pg_advisory_xact_lock(h)"
    " ELSE pg_advisory_xact_lock_shared(h) END FROM ("
    " SELECT DISTINCT ON (h) hashtextextended(k, 0) AS h, x"
    " FROM unnest(CAST(:keys AS text[]), CAST(:exclusive AS boolean[]))"
    " AS t(k, x) ORDER BY h, x DESC) AS ordered"
)

# Probes the (tenant, invitee, node) unique index once per invitee asked.
_INVITERS_OF = """
SELECT invitee_id, node, inviter_id FROM bindings
WHERE tenant_id = $1 AND invitee_id = ANY(CAST($2 AS text[]))
"""


class BindingRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @classmethod
    def from_session(cls, session: AsyncSession) -> BindingRepository:
        return cls(session)

    # --- locks -------------------------------------------------------------------------

    async def lock(self, keys: list[str], *, shared: bool = False) -> None:
        """Take transaction-scoped advisory locks on ``keys``, all shared or all exclusive
        (see ``lock_modes``)."""
        if shared:
            await self.lock_modes(shared=keys)
        else:
            await self.lock_modes(exclusive=keys)

    async def lock_modes(
        self, *, exclusive: Collection[str] = (), shared: Collection[str] = ()
    ) -> None:
        """Take transaction-scoped advisory locks in one statement, each key in its mode, in
        the order of their lock ids (the sorted DISTINCT subquery is not flattened by the
        planner, so the locks are taken in that order), so overlapping sets never deadlock.
        Shared locks only exclude the exclusive ones of the same keys; a key asked for in
        both modes is taken exclusively."""
        wanted = dict.fromkeys(shared, False) | dict.fromkeys(exclusive, True)
        if not wanted:
            return
        try:
            await self.session.execute(
                _LOCK_MODES, {"keys": list(wanted), "exclusive": list(wanted.values())}
            )
        except DBAPIError as exc:
            # Only possible when a chain grew while its locks were being taken and a second
            # round had to lock more: PostgreSQL breaks the deadlock, the caller may retry.
            if getattr(exc.orig, "sqlstate", None) == DEADLOCK_DETECTED:
                raise Conflict(
                    "A concurrent change touched the same users; try again.",
                    code="concurrent_change",
                ) from exc
            raise

    # --- graph walks -------------------------------------------------------------------

    # The effective inviter of a user at a node is the node's own inviter, else the
    # registration inviter (what rewards use). Each step probes the (tenant, invitee, node)
    # unique index for the two nodes and keeps the node's own; UNION ALL with a depth bound,
    # read lazily, so a search stops at its first hit.
    _EFFECTIVE_CHAIN = f"""
        WITH RECURSIVE chain(user_id, depth) AS (
            SELECT CAST(:start AS varchar), 0
            UNION ALL
            SELECT step.inviter_id, chain.depth + 1
            FROM chain
            CROSS JOIN LATERAL (
                SELECT b.inviter_id FROM bindings b
                WHERE b.tenant_id = :tenant AND b.invitee_id = chain.user_id
                  AND b.node IN (:node, 'registration')
                ORDER BY b.node = :node DESC
                LIMIT 1
            ) AS step
            WHERE chain.depth < {MAX_CHAIN_DEPTH}
        )
    """

    async def effective_ancestors_at(
        self, tenant_id: str, nodes: Collection[str], start_user: str
    ) -> dict[str, list[str]]:
        """The effective inviters above ``start_user`` at each of ``nodes``, nearest first,
        walked in one statement. A loop already in the data ends a walk where it repeats."""
        return (await self.effective_ancestors_of(tenant_id, nodes, [start_user]))[start_user]

    async def effective_ancestors_of(
        self, tenant_id: str, nodes: Collection[str], start_users: Collection[str]
    ) -> dict[str, dict[str, list[str]]]:
        """``effective_ancestors_at`` of many users at once: start user → node → the
        effective inviters above it, nearest first; every walk in one statement."""
        starts = list(dict.fromkeys(start_users))
        rows = await self.session.execute(
            _EFFECTIVE_CHAINS, {"tenant": tenant_id, "nodes": list(nodes), "starts": starts}
        )
        return _chains(starts, nodes, rows.all())

    async def chains_and_states(
        self,
        tenant_id: str,
        nodes: Collection[str],
        start_users: Collection[str],
        node: str,
        user_ids: Collection[str],
    ) -> tuple[dict[str, dict[str, list[str]]], dict[str, tuple[bool, datetime | None]]]:
        """``effective_ancestors_of``, and per user of ``user_ids`` whether they are bound
        at ``node`` as an invitee and when they completed it (None if not): one statement
        for what a chunk of registration binds reads once its locks are taken."""
        starts = list(dict.fromkeys(start_users))
        rows = await self.session.execute(
            _CHAINS_AND_STATES,
            {
                "tenant": tenant_id,
                "nodes": list(nodes),
                "starts": starts,
                "node": node,
                "users": list(user_ids),
            },
        )
        walked = []
        states: dict[str, tuple[bool, datetime | None]] = {}
        for user, at_node, on_chain, bound, completed_at, _ in rows.all():
            if at_node is None:
                states[user] = (bound, completed_at)
            else:
                walked.append((user, at_node, on_chain))
        return _chains(starts, nodes, walked), states

    async def effectively_reaches(
        self, tenant_id: str, node: str, start_user: str, target_user: str
    ) -> bool:
        """Does following effective inviters at ``node`` up from ``start_user`` reach
        ``target_user`` (``start_user`` itself included)?"""
        found = await self.session.scalar(
            text(self._EFFECTIVE_CHAIN + " SELECT true FROM chain WHERE user_id = :target LIMIT 1"),
            {"tenant": tenant_id, "node": node, "start": start_user, "target": target_user},
        )
        return bool(found)

    async def reaches(
        self, tenant_id: str, start_user: str, target_user: str, node: str = "registration"
    ) -> bool:
        return await self.effectively_reaches(tenant_id, node, start_user, target_user)

    # --- bindings ----------------------------------------------------------------------

    async def get(self, tenant_id: str, invitee_id: str, node: str) -> Binding | None:
        return await self.session.scalar(
            select(Binding).where(
                Binding.tenant_id == tenant_id,
                Binding.invitee_id == invitee_id,
                Binding.node == node,
            )
        )

    async def insert_if_unbound(self, values: dict[str, Any]) -> Binding | None:
        stmt = (
            insert(Binding)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["tenant_id", "invitee_id", "node"])
            .returning(Binding)
        )
        return (await self.session.scalars(stmt)).one_or_none()

    async def bind_new(
        self,
        tenant_id: str,
        node: str,
        rows: list[dict[str, Any]],
        *,
        actor: str,
        queue: str,
        job_name: str,
        message: dict[str, Any],
    ) -> set[str]:
        """Bind many invitees (distinct) at ``node``, each unless bound there already, with
        the history row of every binding made, and the outbox message ``message`` when
        every one was made (the caller refuses the rest otherwise); one statement. Returns
        the invitees bound."""
        if not rows:
            return set()
        self.session.info[OUTBOX_WRITTEN] = True  # see Database.session: wakes the relay
        result = await self.session.execute(
            _BIND_NEW,
            {
                "tenant": tenant_id,
                "node": node,
                "actor": actor,
                "queue": queue,
                "job_name": job_name,
                "message": json_text(message),
                "count": len(rows),
                "invitees": [r["invitee_id"] for r in rows],
                "inviters": [r["inviter_id"] for r in rows],
                "channels": [r["channel"] for r in rows],
                "apps": [r["app_id"] for r in rows],
                "activity_codes": [r["activity_code"] for r in rows],
                "at": [r["at"] for r in rows],
            },
        )
        return {invitee for (invitee,) in result.all()}

    async def change_inviter(
        self,
        tenant_id: str,
        invitee_id: str,
        node: str,
        expected_inviter_id: str,
        values: dict[str, Any],
    ) -> Binding | None:
        """Compare-and-set: only replaces the inviter the caller saw; None when it moved."""
        stmt = (
            update(Binding)
            .where(
                Binding.tenant_id == tenant_id,
                Binding.invitee_id == invitee_id,
                Binding.node == node,
                Binding.inviter_id == expected_inviter_id,
            )
            .values(**values)
            .returning(Binding)
        )
        result = await self.session.scalars(stmt, execution_options={"populate_existing": True})
        return result.one_or_none()

    async def delete(self, binding: Binding) -> None:
        """Removed at once (flushed), so graph walks in this transaction no longer see it."""
        await self.session.delete(binding)
        await self.session.flush()

    def add_history(self, entry: BindingHistory) -> None:
        self.session.add(entry)

    async def for_invitee(self, tenant_id: str, invitee_id: str) -> list[Binding]:
        stmt = select(Binding).where(
            Binding.tenant_id == tenant_id, Binding.invitee_id == invitee_id
        )
        return list((await self.session.scalars(stmt)).all())

    async def history_for_invitee(self, tenant_id: str, invitee_id: str) -> list[BindingHistory]:
        stmt = (
            select(BindingHistory)
            .where(BindingHistory.tenant_id == tenant_id, BindingHistory.invitee_id == invitee_id)
            .order_by(BindingHistory.id)
        )
        return list((await self.session.scalars(stmt)).all())

    async def page(
        self,
        tenant_id: str,
        params: PageParams,
        *,
        node: str | None = None,
        invitee_id: str | None = None,
        inviter_id: str | None = None,
        either_user_id: str | None = None,
    ) -> tuple[list[Binding], str | None]:
        """Newest first; every filter combination starts from an index on tenant_id plus
        node, invitee or inviter."""
        stmt = select(Binding).where(Binding.tenant_id == tenant_id)
        if node is not None:
            stmt = stmt.where(Binding.node == node)
        if invitee_id is not None:
            stmt = stmt.where(Binding.invitee_id == invitee_id)
        if inviter_id is not None:
            stmt = stmt.where(Binding.inviter_id == inviter_id)
        if either_user_id is not None:
            stmt = stmt.where(
                or_(Binding.invitee_id == either_user_id, Binding.inviter_id == either_user_id)
            )
        return await paginate(self.session, stmt, Binding, params)

    async def invitees_page(
        self, tenant_id: str, inviter_id: str, params: PageParams
    ) -> tuple[list[Binding], str | None]:
        """One row per invitee bound to ``inviter_id`` at any node: their first binding to
        this inviter, newest first. Starts from ix_bindings_tenant_inviter_node; the
        "first" test probes the invitee's at most three bindings."""
        earlier = aliased(Binding)
        first = ~(
            select(earlier.id)
            .where(
                earlier.tenant_id == tenant_id,
                earlier.invitee_id == Binding.invitee_id,
                earlier.inviter_id == inviter_id,
                or_(
                    earlier.created_at < Binding.created_at,
                    and_(earlier.created_at == Binding.created_at, earlier.id < Binding.id),
                ),
            )
            .exists()
        )
        stmt = select(Binding).where(
            Binding.tenant_id == tenant_id, Binding.inviter_id == inviter_id, first
        )
        return await paginate(self.session, stmt, Binding, params)

    async def for_invitees(self, tenant_id: str, invitee_ids: list[str]) -> list[Binding]:
        if not invitee_ids:
            return []
        stmt = select(Binding).where(
            Binding.tenant_id == tenant_id, any_of(Binding.invitee_id, invitee_ids)
        )
        return list((await self.session.scalars(stmt)).all())

    async def inviters_of(
        self, tenant_id: str, invitee_ids: list[str]
    ) -> list[tuple[str, str, str]]:
        """(invitee, node, inviter) of the invitees' bindings, as the driver's records (no
        entities, no result rows: a question about up to 1,000 invitees at once). The ids go
        as one array parameter, so every question is the same prepared statement whatever
        its length (an IN list of n parameters would be a new statement per n)."""
        if not invitee_ids:
            return []
        conn = await self.session.connection()
        raw = await conn.get_raw_connection()
        driver: Any = raw.driver_connection
        return list(await driver.fetch(_INVITERS_OF, tenant_id, invitee_ids))

    # --- node completions --------------------------------------------------------------

    async def completed_nodes(self, tenant_id: str, user_id: str) -> dict[str, datetime]:
        stmt = select(NodeCompletion.node, NodeCompletion.completed_at).where(
            NodeCompletion.tenant_id == tenant_id, NodeCompletion.user_id == user_id
        )
        return {node: at for node, at in (await self.session.execute(stmt)).all()}

    async def completed_at(self, tenant_id: str, user_id: str, node: str) -> datetime | None:
        return await self.session.scalar(
            select(NodeCompletion.completed_at).where(
                NodeCompletion.tenant_id == tenant_id,
                NodeCompletion.user_id == user_id,
                NodeCompletion.node == node,
            )
        )

    async def completions_of(
        self, tenant_id: str, pairs: list[tuple[str, str]]
    ) -> dict[tuple[str, str], datetime]:
        """Completion times of (user, node) pairs — decorates one page of bindings."""
        if not pairs:
            return {}
        nc = NodeCompletion
        stmt = select(nc.user_id, nc.node, nc.completed_at).where(
            nc.tenant_id == tenant_id,
            or_(*(and_(nc.user_id == u, nc.node == n) for u, n in pairs)),
        )
        return {(u, n): at for u, n, at in (await self.session.execute(stmt)).all()}

    async def completion_events(
        self, node: str, users: list[tuple[str, str]]
    ) -> dict[tuple[str, str], str | None]:
        """(tenant, user) → the event id of the user's completion of ``node``, for those of
        ``users`` who completed it: one statement, one probe of the unique index per user."""
        if not users:
            return {}
        rows = await self.session.execute(
            _COMPLETION_EVENTS,
            {"node": node, "tenants": [t for t, _ in users], "users": [u for _, u in users]},
        )
        return {(tenant, user): event_id for tenant, user, event_id in rows.all()}

    async def mark_many_completed(
        self, rows: list[tuple[str, str, str, datetime, str | None]]
    ) -> set[tuple[str, str, str]]:
        """``mark_completed`` of many (tenant, user, node, completed at, event id), distinct by
        (tenant, user, node), in one statement: completions already recorded are kept.
        Returns the (tenant, user, node) recorded."""
        if not rows:
            return set()
        result = await self.session.execute(
            _INSERT_COMPLETIONS,
            {
                "tenants": [r[0] for r in rows],
                "users": [r[1] for r in rows],
                "nodes": [r[2] for r in rows],
                "at": [r[3] for r in rows],
                "events": [r[4] for r in rows],
            },
        )
        return {(tenant, user, node) for tenant, user, node in result.all()}

    async def mark_completed(
        self, tenant_id: str, user_id: str, node: str, at: datetime, event_id: str | None
    ) -> bool:
        result = await self.session.execute(
            insert(NodeCompletion)
            .values(
                tenant_id=tenant_id, user_id=user_id, node=node, completed_at=at, event_id=event_id
            )
            .on_conflict_do_nothing(index_elements=["tenant_id", "user_id", "node"])
            .returning(NodeCompletion.id)
        )
        return result.scalar_one_or_none() is not None

    # --- counts ------------------------------------------------------------------------

    async def inviter_counts(
        self,
        tenant_id: str,
        inviter_id: str,
        *,
        since: datetime | None,
        until: datetime | None,
        completed_only: bool,
    ) -> dict[str, tuple[int, int]]:
        """Per node: (invitees bound to the inviter at that node, invitees for whom the
        inviter is the effective one — own binding, or registration binding where the node
        has none).

        Starts from ix_bindings_tenant_inviter_node (tenant, inviter, node, bound_at) and
        probes the (tenant, invitee, node) and (tenant, user, node) unique indexes once per
        invitee of this inviter: the cost follows the inviter's own invitee count, never the
        size of the graph. The window applies to ``bound_at``, or with ``completed_only``
        to the completion time (when the invitee qualified).
        """
        completion_join = "JOIN" if completed_only else "LEFT JOIN"
        moment = "nc.completed_at" if completed_only else "c.bound_at"
        window = ""
        params: dict[str, Any] = {"tenant": tenant_id, "inviter": inviter_id}
        if since is not None:
            window += f" AND {moment} >= :since"
            params["since"] = since
        if until is not None:
            window += f" AND {moment} < :until"
            params["until"] = until
        sql = f"""
            WITH mine AS (
                SELECT b.invitee_id, b.node, b.bound_at
                FROM bindings b
                WHERE b.tenant_id = :tenant AND b.inviter_id = :inviter
            ),
            candidates AS (
                SELECT invitee_id, node, bound_at, true AS own FROM mine
                UNION ALL
                SELECT m.invitee_id, n.node, m.bound_at, false AS own
                FROM mine m
                CROSS JOIN (VALUES ('account_opening'), ('deposit')) AS n(node)
                WHERE m.node = 'registration'
                  AND NOT EXISTS (
                      SELECT 1 FROM bindings o
                      WHERE o.tenant_id = :tenant AND o.invitee_id = m.invitee_id
                        AND o.node = n.node
                  )
            )
            SELECT c.node,
                   count(*) FILTER (WHERE c.own) AS own_count,
                   count(*) AS effective_count
            FROM candidates c
            {completion_join} node_completions nc
              ON nc.tenant_id = :tenant AND nc.user_id = c.invitee_id AND nc.node = c.node
            WHERE true {window}
            GROUP BY c.node
        """
        rows = await self.session.execute(text(sql), params)
        return {node: (int(own), int(effective)) for node, own, effective in rows.all()}


def _chains(
    starts: list[str], nodes: Collection[str], rows: Iterable[Any]
) -> dict[str, dict[str, list[str]]]:
    """Start user → node → the effective inviters above it, nearest first, from the walks'
    (start, node, user) rows in that order. A loop already in the data ends a walk where
    it repeats."""
    chains = {start: {node: dict[str, None]() for node in nodes} for start in starts}
    looped: set[tuple[str, str]] = set()
    for start, node, user_id in rows:
        if (start, node) in looped:
            continue
        chain = chains[start][node]
        if user_id in chain:  # a loop already in the data ends the walk
            looped.add((start, node))
            continue
        chain[user_id] = None
    return {
        start: {node: list(users) for node, users in by_node.items()}
        for start, by_node in chains.items()
    }
