"""Referral graph at 10,000 and 1,000,000 bindings: do code resolution, self-binding,
per-inviter counts and the cycle check stay flat as the graph grows?

Creates a scratch database on the local PostgreSQL, migrates it, seeds bindings (with
matching invite codes and node completions) by COPY, measures p50/p99 of each operation
through the service functions at each size, prints a table and drops the database.

    .venv/bin/python -m bench.referral_graph [--pg-url postgresql://postgres@127.0.0.1:5432/postgres]
        [--sizes 10000,1000000] [--samples 300] [--whale 10000]

Graph shape: a forest of trees of fan-out 8 and depth 4 (4,681 users each), so chains are
equally long at both sizes and only the graph's size changes; every non-root user has a
registration inviter, every 5th an account-opening and every 10th a deposit inviter (its
grandparent); everyone completed registration long ago, every 3rd user account opening,
every 7th the first deposit.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta

import asyncpg
from sqlalchemy.engine import make_url

from contracts.payloads import Node
from referral_service.bindings import service as bindings
from referral_service.bindings.repository import BindingRepository
from referral_service.bindings.schemas import Channel
from referral_service.invite_codes import service as codes
from referral_service.invite_codes.codes import generate_code
from service_kit.db import Database
from service_kit.migrations import ensure_database, upgrade

TENANT = "bench"
APP = "broker-app"
TREE = 4681  # 1 + 8 + 64 + 512 + 4096
FANOUT = 8
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
LONG_AGO = NOW - timedelta(days=30)
GRACE = timedelta(hours=72)
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}

BINDING_COLUMNS = [
    "id", "tenant_id", "invitee_id", "inviter_id", "node", "channel", "app_id",
    "operator_id", "bound_at", "created_at", "updated_at",
]  # fmt: skip
COMPLETION_COLUMNS = ["tenant_id", "user_id", "node", "completed_at", "event_id"]
CODE_COLUMNS = ["id", "tenant_id", "app_id", "user_id", "code", "created_at"]


def parent(i: int) -> int | None:
    local = i % TREE
    if local == 0:
        return None
    return (i - local) + (local - 1) // FANOUT


def user(i: int) -> str:
    return f"u{i}"


def depth(i: int) -> int:
    d = 0
    p = parent(i)
    while p is not None:
        d += 1
        p = parent(p)
    return d


def bindings_of(i: int) -> Iterator[tuple[object, ...]]:
    p = parent(i)
    if p is None:
        return
    bound = LONG_AGO + timedelta(seconds=i % 86_400)
    gp = parent(p)
    above = gp if gp is not None else p

    def row(node: Node, inviter: int) -> tuple[object, ...]:
        return (
            uuid.uuid4(), TENANT, user(i), user(inviter), node.value, Channel.invite_code.value,
            APP, None, bound, bound, bound,
        )  # fmt: skip

    yield row(Node.registration, p)
    if i % 5 == 0:
        yield row(Node.account_opening, above)
    if i % 10 == 0:
        yield row(Node.deposit, above)


class Seeder:
    """Grows the graph user by user until it holds exactly the wanted number of bindings."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.next_user = 0
        self.bindings = 0
        self.codes: dict[int, str] = {}
        self.taken: set[str] = set()

    async def grow_to(self, target: int, chunk: int = 100_000) -> float:
        started = time.perf_counter()
        while self.bindings < target:
            b_rows: list[tuple[object, ...]] = []
            c_rows: list[tuple[object, ...]] = []
            code_rows: list[tuple[object, ...]] = []
            while self.bindings + len(b_rows) < target and len(b_rows) < chunk:
                i = self.next_user
                self.next_user += 1
                for r in bindings_of(i):
                    if self.bindings + len(b_rows) < target:
                        b_rows.append(r)
                c_rows.append((TENANT, user(i), "registration", LONG_AGO, f"e-r-{i}"))
                if i % 3 == 0:
                    c_rows.append((TENANT, user(i), "account_opening", LONG_AGO, f"e-a-{i}"))
                if i % 7 == 0:
                    c_rows.append((TENANT, user(i), "deposit", LONG_AGO, f"e-d-{i}"))
                code = generate_code()
                while code in self.taken:
                    code = generate_code()
                self.taken.add(code)
                self.codes[i] = code
                code_rows.append((uuid.uuid4(), TENANT, APP, user(i), code, LONG_AGO))
            await self.conn.copy_records_to_table(
                "bindings", records=b_rows, columns=BINDING_COLUMNS
            )
            await self.conn.copy_records_to_table(
                "node_completions", records=c_rows, columns=COMPLETION_COLUMNS
            )
            await self.conn.copy_records_to_table(
                "invite_codes", records=code_rows, columns=CODE_COLUMNS
            )
            self.bindings += len(b_rows)
        # Fresh statistics and visibility map: what a running database has.
        await self.conn.execute("VACUUM ANALYZE bindings, node_completions, invite_codes")
        return time.perf_counter() - started


async def timed(samples: int, op: Callable[[int], Awaitable[object]]) -> tuple[float, float]:
    for k in range(min(20, samples)):  # warm the pool and caches
        await op(-1 - k)
    times = []
    for k in range(samples):
        started = time.perf_counter()
        await op(k)
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    p50 = statistics.median(times)
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    return p50, p99


async def measure(
    db: Database, seeder: Seeder, size: int, samples: int, rng: random.Random
) -> dict[str, tuple[float, float]]:
    users = seeder.next_user
    inviters = sorted({p for i in range(users) if (p := parent(i)) is not None})
    leaves = [i for i in range(users) if depth(i) == 4]
    results: dict[str, tuple[float, float]] = {}

    async def resolve(_: int) -> None:
        i = rng.randrange(users)
        async with db.session() as session:
            found = await codes.resolve_code(session, TENANT, seeder.codes[i], APP)
            assert found.user_id == user(i)

    async def self_bind(k: int) -> None:
        # A user who just registered enters a friend's code: the whole request's work.
        inviter = rng.randrange(users)
        invitee = f"fresh-{size}-{k}"
        async with db.session() as session:
            owner = await codes.resolve_code(session, TENANT, seeder.codes[inviter], APP)
            await bindings.bind(
                session,
                tenant_id=TENANT,
                invitee_id=invitee,
                inviter_id=owner.user_id,
                node=Node.registration,
                channel=Channel.invite_code,
                actor=f"user:{invitee}",
                at=NOW,
                registration_grace=GRACE,
                app_id=APP,
            )

    async def counts(_: int) -> None:
        async with db.session() as session:
            stats = await bindings.inviter_stats(session, TENANT, user(rng.choice(inviters)))
            assert stats.nodes[0].invitee_count > 0

    async def counts_completed_window(_: int) -> None:
        async with db.session() as session:
            await bindings.inviter_stats(
                session,
                TENANT,
                user(rng.choice(inviters)),
                since=LONG_AGO - timedelta(days=1),
                until=NOW,
                completed_only=True,
            )

    async def cycle_check(_: int) -> None:
        # Worst case: the full chain from a depth-4 leaf is walked and the target not found.
        async with db.session() as session:
            repo = BindingRepository.from_session(session)
            assert not await repo.reaches(TENANT, user(rng.choice(leaves)), "nobody")

    results["code resolution"] = await timed(samples, resolve)
    results["self-bind (resolve+bind+commit)"] = await timed(samples, self_bind)
    results["inviter counts"] = await timed(samples, counts)
    results["inviter counts, completed+window"] = await timed(samples, counts_completed_window)
    results["cycle check (chain of 4)"] = await timed(samples, cycle_check)
    return results


def check_local(url: str) -> None:
    host = make_url(url).host or "127.0.0.1"
    if host not in LOCAL_HOSTS:
        raise SystemExit(f"benchmarks only talk to the local machine, not {host}")


async def drop(server_url: str, name: str) -> None:
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def measure_whale(
    conn: asyncpg.Connection, db: Database, invitees: int, samples: int
) -> dict[str, tuple[float, float]]:
    """Counts of an inviter far above the typical one: every invitee is a probe."""
    rows = [
        (uuid.uuid4(), TENANT, f"w{k}", "whale", "registration", "share_link", APP, None,
         LONG_AGO, LONG_AGO, LONG_AGO)
        for k in range(invitees)
    ]  # fmt: skip
    await conn.copy_records_to_table("bindings", records=rows, columns=BINDING_COLUMNS)
    done = [
        (TENANT, f"w{k}", "account_opening", LONG_AGO, f"e-w-{k}") for k in range(0, invitees, 2)
    ]
    await conn.copy_records_to_table("node_completions", records=done, columns=COMPLETION_COLUMNS)
    await conn.execute("VACUUM ANALYZE bindings, node_completions")

    async def counts(_: int) -> None:
        async with db.session() as session:
            await bindings.inviter_stats(session, TENANT, "whale")

    async def completed(_: int) -> None:
        async with db.session() as session:
            await bindings.inviter_stats(session, TENANT, "whale", completed_only=True)

    n = max(20, samples // 5)
    return {
        "inviter counts": await timed(n, counts),
        "inviter counts, completed only": await timed(n, completed),
    }


async def run(
    server_url: str, db_url: str, sizes: list[int], samples: int, whale_invitees: int
) -> None:
    raw_url = db_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    conn = await asyncpg.connect(raw_url)
    db = Database(db_url, pool_size=2)
    seeder = Seeder(conn)
    rng = random.Random(7)
    table: dict[int, dict[str, tuple[float, float]]] = {}
    try:
        for size in sizes:
            seconds = await seeder.grow_to(size)
            count = await conn.fetchval("SELECT count(*) FROM bindings")
            print(
                f"seeded {count:,} bindings, {seeder.next_user:,} users/codes in {seconds:.1f}s",
                flush=True,
            )
            table[size] = await measure(db, seeder, size, samples, rng)
            # Self-binds added rows: remove them so the next size is exactly what it says.
            for sql in (
                "DELETE FROM bindings WHERE invitee_id LIKE 'fresh-%'",
                "DELETE FROM binding_history WHERE invitee_id LIKE 'fresh-%'",
                "DELETE FROM outbox_messages",
            ):
                await conn.execute(sql)
        whale = await measure_whale(conn, db, whale_invitees, samples) if whale_invitees else None
    finally:
        await db.dispose()
        await conn.close()
    ops = list(next(iter(table.values())))
    header = f"{'operation (ms)':36}" + "".join(
        f"{f'{s:,} p50':>14}{f'{s:,} p99':>14}" for s in sizes
    )
    print()
    print(header)
    print("-" * len(header))
    for op in ops:
        line = f"{op:36}"
        for s in sizes:
            p50, p99 = table[s][op]
            line += f"{p50:14.2f}{p99:14.2f}"
        print(line)
    if whale:
        print()
        print(
            f"one inviter with {whale_invitees:,} invitees (added on top of the largest graph; "
            "counts follow the inviter's own invitees):"
        )
        for op, (p50, p99) in whale.items():
            print(f"{op:36}{'p50':>14}{p50:10.2f}{'p99':>8}{p99:10.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--sizes", default="10000,1000000")
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument(
        "--whale", type=int, default=10_000, help="invitees of one extra heavy inviter (0: skip)"
    )
    args = parser.parse_args()
    check_local(args.pg_url)
    server = make_url(args.pg_url.replace("postgresql+asyncpg://", "postgresql://", 1))
    name = f"bench_referral_{uuid.uuid4().hex[:8]}"
    server_url = server.set(database="postgres").render_as_string(hide_password=False)
    db_url = server.set(drivername="postgresql+asyncpg", database=name).render_as_string(
        hide_password=False
    )
    sizes = sorted(int(s) for s in args.sizes.split(","))
    asyncio.run(ensure_database(db_url))
    try:
        upgrade("referral", db_url)
        asyncio.run(run(server_url, db_url, sizes, args.samples, args.whale))
    finally:
        asyncio.run(drop(server_url, name))


if __name__ == "__main__":
    main()
