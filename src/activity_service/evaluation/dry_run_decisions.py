"""The decisions of a dry-run before its limits: who completes which rule in the period and
may be rewarded for it, per kind, read in chunks of users and written nowhere.

- Basic: the engine's own pure rules (``engine.achievement`` per rule — tiers stack for
  real-time activities —, ``engine.highest_tiers`` for at-end ones), then eligibility as the
  evaluation checks it: the segment snapshot at the achievement, the new/old-user attribute
  from the user's new-user rewards in other activities.
- Referral: the invitee's achievement per rule, the effective inviter of the task's node
  (asked of referral_service for a chunk at once), the invitee's prize, the inviter's segment
  at the achievement, one regular activity at a time (other regular activities the inviter
  took part in then), and the inviter's running count per rule in achievement order, which
  picks the range (tiered) and its one-off bonus.

The limits (per-user caps, total quantities, the budget) are applied afterwards over all
candidates in achievement order (``dry_run.apply_limits``).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from collections.abc import AsyncGenerator, Callable, Iterable, Iterator, Sequence
from contextlib import aclosing, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from itertools import groupby
from operator import attrgetter, itemgetter
from typing import Any, NamedTuple, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from activity_service.activities.models import Activity
from activity_service.activities.rules import TaskType
from activity_service.evaluation.daily_repository import DailyRunRepository
from activity_service.evaluation.daily_run import SharedFlows
from activity_service.evaluation.dry_run_repository import DryRunRepository
from activity_service.evaluation.engine import (
    Achievement,
    Certification,
    MissingRate,
    TierAward,
    UserFacts,
    Window,
    highest_tiers,
    node_of,
    tier_award,
)
from activity_service.evaluation.referral_bulk import InviterDirectory
from activity_service.evaluation.service import (
    ACTION_EVENT_TYPES,
    FACT_TYPES,
    MONEY_TYPES,
)
from activity_service.events.repository import EventRepository
from activity_service.progress.flows import CUMULATIVE_TASKS, EVENT_FLOWS, Flow
from activity_service.progress.repository import DeviceRepository
from activity_service.segments.repository import SegmentRepository
from activity_service.segments.snapshot import snapshot_at
from activity_service.tenants.service import TenantContext
from contracts.payloads import Node
from service_kit.db import Database

T = TypeVar("T")

# A task's name per candidate: a lookup, cheaper than the enum's ``.value``.
_TASK_NAMES = {task: task.value for task in TaskType}

CHUNK_SIZE = 2000
# Users decided between two turns given to the event loop: the reads of the next chunk and
# the inviter questions in flight move on while a chunk is decided (each turn costs
# microseconds; a stretch of this many users, milliseconds).
USERS_PER_TURN = 200


class Candidate(NamedTuple):
    """A reward the activity would grant unless a limit refuses it. A named tuple, not a
    dataclass: a dry-run makes hundreds of thousands, and a frozen dataclass cost three
    times as much to build."""

    user_id: str
    rule_id: str
    prize_id: str | None
    task: str
    achieved_at: datetime
    # Ties at one instant are decided in rule order (an invitee's prize before the inviter's).
    order: int = 0
    counterpart_id: str | None = None
    role: str | None = None  # referral: inviter | invitee


class Refusal(NamedTuple):
    candidate: Candidate
    reason: str
    detail: str | None = None


@dataclass
class Bite:
    """A limit that refused grants: which, its value, and for whom."""

    limit: str  # per_user_cap | total_quantity | budget
    prize_id: str | None
    value: Decimal
    currency: str | None = None
    refused: int = 0
    users: set[str] = field(default_factory=set)
    first_at: datetime | None = None
    first_users: list[str] = field(default_factory=list)


@dataclass
class DryRun:
    users_evaluated: int = 0
    users_truncated: bool = False
    grants: list[Candidate] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)
    # Why candidates were not granted: reason → count (also undecidable ones: no_fx_rate).
    refused: Counter[str] = field(default_factory=Counter)
    bites: dict[tuple[str, str | None], Bite] = field(default_factory=dict)
    budget_spent: Decimal | None = None
    # Wall seconds per phase (users, reading, inviters, limits, …): where a slow dry-run
    # waited. Reading and inviters count only the time the deciding stood waiting for them.
    phases: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))

    def refuse(self, candidate: Candidate, reason: str, detail: str | None = None) -> None:
        self.refusals.append(Refusal(candidate, reason, detail))
        self.refused[reason] += 1


@contextmanager
def timed(report: DryRun, phase: str) -> Iterator[None]:
    """Adds the wall time of the block to ``report.phases[phase]``."""
    began = time.perf_counter()
    try:
        yield
    finally:
        report.phases[phase] += time.perf_counter() - began


def event_types(rules: list[dict[str, Any]]) -> list[str]:
    """The event types that can bring a user into the activity's decisions."""
    types: set[str] = set()
    for rule in rules:
        task = TaskType(rule["task"])
        types.update(MONEY_TYPES if task in CUMULATIVE_TASKS else ACTION_EVENT_TYPES.get(task, ()))
    return sorted(types)


async def users_of(
    db: Database, tenant_id: str, rules: list[dict[str, Any]], window: Window
) -> list[str]:
    """The users with an event in the period that may complete a rule, sorted by id."""
    async with db.session() as session:
        return await EventRepository.from_session(session).users_in_scopes(
            tenant_id, [(event_types(rules), window.starts_at, window.ends_at)]
        )


async def load_facts(
    session: AsyncSession, tenant_id: str, users: list[str], downloads: bool
) -> dict[str, UserFacts]:
    """The facts of a chunk of users (whole history; devices only for download tasks)."""
    records = await DryRunRepository.from_session(session).fact_records(
        tenant_id, users, FACT_TYPES
    )
    logins = (
        await DeviceRepository.from_session(session).first_new_device_logins(tenant_id, users)
        if downloads
        else {}
    )
    # Each user's records are consecutive: built as they come, no list per user.
    facts = {
        user: facts_of_records(user, rows, logins.get(user))
        for user, rows in groupby(records, key=itemgetter(0))
    }
    for user in users:
        if user not in facts:  # no event of these types
            facts[user] = facts_of_records(user, (), logins.get(user))
    return facts


def facts_of_records(
    user_id: str, records: Iterable[Sequence[Any]], new_device_login_at: datetime | None = None
) -> UserFacts:
    """``service.facts_of`` over the dry-run's event records (``fact_records``), oldest
    first: the same facts, without an event object per record (a dry-run reads hundreds of
    thousands)."""
    facts = UserFacts(user_id=user_id, new_device_login_at=new_device_login_at)
    add_flow = facts.flows.append
    flow_kinds = EVENT_FLOWS.get
    for _, kind, event_id, app_id, at, amount, currency, enterprise_id, enterprise in records:
        flow_kind = flow_kinds(kind)
        if flow_kind is not None:
            add_flow(Flow(at, event_id, flow_kind, Decimal(amount), currency))
        elif kind == "user.registered":
            if facts.registered_at is None:
                facts.registered_at = at
                facts.app_id = app_id
        elif kind == "account.opened":
            if facts.opened_at is None:
                facts.opened_at = at
        elif kind == "app.login":
            if facts.first_login_at is None:
                facts.first_login_at = at
        elif kind == "enterprise.certified":
            # The name counts only with an id, as the event's payload is read.
            name = enterprise if enterprise_id is not None else None
            facts.certifications.append(Certification(at, event_id, str(enterprise_id), name))
        if facts.app_id is None:
            facts.app_id = app_id
    return facts


async def _read(
    db: Database, tenant_id: str, chunk: list[str], downloads: bool
) -> dict[str, UserFacts]:
    async with db.session() as session:
        return await load_facts(session, tenant_id, chunk, downloads)


async def facts_in_chunks(
    db: Database, tenant_id: str, users: list[str], downloads: bool, report: DryRun
) -> AsyncGenerator[tuple[list[str], dict[str, UserFacts]], None]:
    """The users' facts chunk by chunk; the next chunk is read while this one is decided
    (the database works while the decisions take this process's CPU)."""
    chunks = [users[i : i + CHUNK_SIZE] for i in range(0, len(users), CHUNK_SIZE)]
    if not chunks:
        return
    upcoming = asyncio.create_task(_read(db, tenant_id, chunks[0], downloads))
    try:
        for index, chunk in enumerate(chunks):
            with timed(report, "reading"):
                facts = await upcoming
            if index + 1 < len(chunks):
                upcoming = asyncio.create_task(_read(db, tenant_id, chunks[index + 1], downloads))
            yield chunk, facts
    finally:  # a chunk read ahead but not decided (the caller failed)
        upcoming.cancel()
        await asyncio.wait([upcoming])
        if not upcoming.cancelled():
            upcoming.exception()


def _downloads(rules: list[dict[str, Any]]) -> bool:
    return any(r["task"] == TaskType.download.value for r in rules)


async def _in_segment(
    session: AsyncSession,
    activity: Activity,
    tenant: TenantContext,
    asked: list[tuple[str, datetime]],
) -> set[tuple[str, datetime]]:
    """Of (user, achieved at) pairs, those whose user is in the activity's segment snapshot at
    that time (all of them without a segment)."""
    if activity.segment_id is None or not asked:
        return set(asked)
    refresh = activity.segment_refresh or "5m"
    snaps = {(user, at): (user, snapshot_at(at, refresh, tenant.zone)) for user, at in asked}
    members = await SegmentRepository.from_session(session).members_at(
        tenant.tenant_id, activity.segment_id, sorted(set(snaps.values()))
    )
    return {pair for pair, snap in snaps.items() if snap in members}


# --------------------------------------------------------------------------- basic


def decide(
    rules: list[dict[str, Any]],
    facts: UserFacts,
    window: Window,
    tenant: TenantContext,
    at_end: bool,
) -> tuple[list[tuple[dict[str, Any], Achievement]], list[str]]:
    """The rules the user completes in the window (each once; at-end activities: only the
    highest tier per cumulative task), and the outcomes of those that cannot be decided."""
    done: list[tuple[dict[str, Any], Achievement]] = []
    problems: list[str] = []
    shared = SharedFlows(facts)  # the tiers of a task read one computation of its sums
    for rule in rules:
        if at_end and TaskType(rule["task"]) in CUMULATIVE_TASKS:
            continue
        try:
            reached = shared.achievement(
                rule, window, zone=tenant.zone, rates=tenant.rates, until=window.ends_at
            )
        except MissingRate:
            problems.append("no_fx_rate")
            continue
        if reached is not None:
            done.append((rule, reached))
    if at_end:
        try:
            for rule, last_at, value in highest_tiers(
                rules, facts, window, tenant.rates, tenant.base_currency
            ):
                done.append((rule, Achievement(TaskType(rule["task"]), last_at, value)))
        except MissingRate:
            problems.append("no_fx_rate")
    return done, problems


async def basic_candidates(
    db: Database,
    activity: Activity,
    tenant: TenantContext,
    window: Window,
    users: list[str],
    report: DryRun,
) -> list[Candidate]:
    downloads = _downloads(list((activity.config or {}).get("rules", [])))
    kept: list[Candidate] = []
    async with aclosing(facts_in_chunks(db, tenant.tenant_id, users, downloads, report)) as chunks:
        async for chunk, facts in chunks:
            kept.extend(await _basic_chunk(db, activity, tenant, window, chunk, facts, report))
    return kept


async def _basic_chunk(
    db: Database,
    activity: Activity,
    tenant: TenantContext,
    window: Window,
    chunk: list[str],
    facts: dict[str, UserFacts],
    report: DryRun,
) -> list[Candidate]:
    config = activity.config or {}
    rules: list[dict[str, Any]] = list(config.get("rules", []))
    at_end = config.get("timing", "real_time") == "at_end"
    order = {rule["id"]: n for n, rule in enumerate(rules)}
    found: list[Candidate] = []
    for index, user in enumerate(chunk):
        if index % USERS_PER_TURN == 0:
            await asyncio.sleep(0)
        done, problems = decide(rules, facts[user], window, tenant, at_end)
        report.refused.update(problems)
        found.extend(
            Candidate(
                user_id=user,
                rule_id=rule["id"],
                prize_id=str(rule["prize_id"]),
                task=_TASK_NAMES[reached.task],
                achieved_at=reached.achieved_at,
                order=order[rule["id"]],
            )
            for rule, reached in done
        )
    if activity.segment_id is None and activity.attribute not in ("new_user", "old_user"):
        return found
    async with db.session() as session:
        return await _basic_eligible(session, activity, tenant, found, report)


async def _basic_eligible(
    session: AsyncSession,
    activity: Activity,
    tenant: TenantContext,
    found: list[Candidate],
    report: DryRun,
) -> list[Candidate]:
    """Segment snapshot and new/old-user attribute, as the evaluation checks them."""
    members = await _in_segment(
        session, activity, tenant, [(c.user_id, c.achieved_at) for c in found]
    )
    candidates = []
    for c in found:
        if (c.user_id, c.achieved_at) in members:
            candidates.append(c)
        else:
            report.refuse(c, "not_in_segment")
    attribute = activity.attribute or "unlimited"
    if attribute not in ("new_user", "old_user") or not candidates:
        return candidates
    rewards: dict[str, list[tuple[Any, datetime]]] = {}
    for user, other, at in await DailyRunRepository.from_session(session).new_user_rewards(
        tenant.tenant_id, sorted({c.user_id for c in candidates})
    ):
        rewards.setdefault(user, []).append((other, at))
    kept = []
    for c in candidates:
        # New until a new-user reward elsewhere was achieved (at the same moment too); old
        # only from one achieved strictly earlier — as ``service._basic_eligibility``.
        rewarded = [at for other, at in rewards.get(c.user_id, ()) if other != activity.id]
        if attribute == "new_user" and any(at <= c.achieved_at for at in rewarded):
            report.refuse(c, "not_new_user")
        elif attribute == "old_user" and not any(at < c.achieved_at for at in rewarded):
            report.refuse(c, "not_old_user")
        else:
            kept.append(c)
    return kept


# --------------------------------------------------------------------------- referral


class _Qualifying(NamedTuple):
    """An invitee who completed a rule's task, for their effective inviter."""

    rule: dict[str, Any]
    order: int
    invitee: str
    inviter: str
    reached: Achievement


async def referral_candidates(
    db: Database,
    activity: Activity,
    tenant: TenantContext,
    window: Window,
    users: list[str],
    inviters: InviterDirectory,
    report: DryRun,
) -> list[Candidate]:
    """``users`` are invitees; the bindings are those stored now. A node's inviter cannot
    change once the node is completed (SPEC §6), so for every task completed in a past period
    the inviter bound now is the one the evaluation used."""
    config = activity.config or {}
    rules: list[dict[str, Any]] = list(config.get("rules", []))
    downloads = _downloads(rules)
    candidates: list[Candidate] = []
    qualifying: list[_Qualifying] = []
    # A chunk's inviters are asked as soon as its achievements are known, and credited
    # after the next chunk is decided: the question is answered meanwhile.
    asked: tuple[list[_Done], asyncio.Task[dict[str, dict[str, str | None]]]] | None = None
    try:
        async with aclosing(
            facts_in_chunks(db, tenant.tenant_id, users, downloads, report)
        ) as chunks:
            async for chunk, facts in chunks:
                done = await _invitee_achievements(rules, window, tenant, chunk, facts, report)
                question = asyncio.create_task(
                    inviters.effective_inviters(
                        tenant.tenant_id, sorted({user for user, *_ in done})
                    )
                )
                if asked is not None:
                    qualifying.extend(
                        await _credited(db, activity, tenant, *asked, candidates, report)
                    )
                asked = (done, question)
        if asked is not None:
            qualifying.extend(await _credited(db, activity, tenant, *asked, candidates, report))
            asked = None
    finally:  # a question still in flight (something failed)
        if asked is not None:
            asked[1].cancel()
            await asyncio.wait([asked[1]])
            if not asked[1].cancelled():
                asked[1].exception()
    candidates.extend(await _inviter_rewards(db, activity, tenant, qualifying, report))
    return candidates


# An invitee's completed rule: (invitee, the rule's index, the rule, its achievement).
_Done = tuple[str, int, dict[str, Any], Achievement]


async def _invitee_achievements(
    rules: list[dict[str, Any]],
    window: Window,
    tenant: TenantContext,
    chunk: list[str],
    facts: dict[str, UserFacts],
    report: DryRun,
) -> list[_Done]:
    """The rules each invitee of a chunk completed in the window."""
    done: list[_Done] = []
    for index, user in enumerate(chunk):
        if index % USERS_PER_TURN == 0:
            await asyncio.sleep(0)
        shared = SharedFlows(facts[user])
        for n, rule in enumerate(rules):
            try:
                reached = shared.achievement(
                    rule, window, zone=tenant.zone, rates=tenant.rates, until=window.ends_at
                )
            except MissingRate:
                report.refused["no_fx_rate"] += 1
                continue
            if reached is not None:
                done.append((user, n, rule, reached))
    return done


async def _credited(
    db: Database,
    activity: Activity,
    tenant: TenantContext,
    done: list[_Done],
    question: asyncio.Task[dict[str, dict[str, str | None]]],
    candidates: list[Candidate],
    report: DryRun,
) -> list[_Qualifying]:
    """A chunk's completed rules credited to the effective inviters ``question`` answers:
    the invitee prizes (into ``candidates``) and, returned, the qualifications of inviters
    in the segment."""
    rules: list[dict[str, Any]] = list((activity.config or {}).get("rules", []))
    with timed(report, "inviters"):
        nodes = await question
    # The node whose inviter a rule's task credits (one lookup per rule, not per invitee).
    task_nodes = [node_of(TaskType(rule["task"])).value for rule in rules]
    found: list[_Qualifying] = []
    for user, n, rule, reached in done:
        bound = nodes.get(user, {})
        inviter = bound.get(task_nodes[n]) or bound.get(Node.registration.value)
        if inviter is None or inviter == user:
            report.refuse(
                Candidate(
                    user_id=user,
                    rule_id=rule["id"],
                    prize_id=_str(rule.get("prize_id")),
                    task=_TASK_NAMES[reached.task],
                    achieved_at=reached.achieved_at,
                    order=2 * n,
                ),
                "no_inviter",
                f"node {task_nodes[n]}",
            )
            continue
        if rule.get("invitee_prize_id"):
            candidates.append(
                Candidate(
                    user_id=user,
                    rule_id=f"{rule['id']}:invitee",
                    prize_id=str(rule["invitee_prize_id"]),
                    task=_TASK_NAMES[reached.task],
                    achieved_at=reached.achieved_at,
                    order=2 * n,
                    counterpart_id=inviter,
                    role="invitee",
                )
            )
        found.append(_Qualifying(rule, 2 * n + 1, user, inviter, reached))
    if activity.segment_id is None or not found:
        return found
    async with db.session() as session:
        members = await _in_segment(
            session, activity, tenant, [(q.inviter, q.reached.achieved_at) for q in found]
        )
    qualifying: list[_Qualifying] = []
    for q in found:
        if (q.inviter, q.reached.achieved_at) in members:
            qualifying.append(q)
        else:
            report.refuse(
                _inviter_candidate(q, q.rule.get("prize_id")),
                "not_in_segment",
                f"invitee {q.invitee}",
            )
    return qualifying


# The invitees' achievement order: time, rule order (an invitee's prize first), invitee.
_QUALIFIED = (attrgetter("reached.achieved_at"), attrgetter("order"), attrgetter("invitee"))
_UNKNOWN: Any = object()


def sorted_by(items: list[T], *keys: Callable[[T], Any]) -> list[T]:
    """``items`` sorted in place by ``keys`` (the first the most significant): one stable
    sort per key from the last, each comparing plain values — half the time of one sort by
    a tuple of them, for hundreds of thousands of items."""
    for key in reversed(keys):
        items.sort(key=key)
    return items


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def _inviter_candidate(
    q: _Qualifying, prize_id: Any, rule_id: str | None = None, *, bonus: bool = False
) -> Candidate:
    return Candidate(
        user_id=q.inviter,
        rule_id=rule_id or q.rule["id"],
        prize_id=_str(prize_id),
        task=_TASK_NAMES[q.reached.task],
        achieved_at=q.reached.achieved_at,
        order=q.order,
        counterpart_id=None if bonus else q.invitee,
        role="inviter",
    )


async def _inviter_rewards(
    db: Database,
    activity: Activity,
    tenant: TenantContext,
    qualifying: list[_Qualifying],
    report: DryRun,
) -> list[Candidate]:
    """The inviters' rewards, their invitees taken in achievement order: one regular activity
    at a time, the running count per inviter and rule, the range it falls in (tiered)."""
    config = activity.config or {}
    tiered = config.get("reward_type", "fixed") == "tiered"
    regular = (activity.attribute or "regular") == "regular"
    busy: dict[str, list[tuple[datetime, datetime]]] = {}
    if regular and qualifying:
        async with db.session() as session:
            busy = await DryRunRepository.from_session(session).other_regular_spans(
                tenant.tenant_id, activity.id, sorted({q.inviter for q in qualifying})
            )
    taking_part: set[str] = set()
    counts: Counter[tuple[str, str]] = Counter()
    # What the n-th qualifying invitee of a rule earns: the same for every inviter.
    awards: dict[tuple[str, int], TierAward | None] = {}
    rewards: list[Candidate] = []
    for q in sorted_by(qualifying, *_QUALIFIED):
        at = q.reached.achieved_at
        if regular and q.inviter not in taking_part:
            if any(since <= at < until for since, until in busy.get(q.inviter, ())):
                report.refuse(
                    _inviter_candidate(q, q.rule.get("prize_id")),
                    "in_other_regular_activity",
                    f"invitee {q.invitee}",
                )
                continue
            taking_part.add(q.inviter)  # until the period ends, as a claim until the window's
        counts[(q.rule["id"], q.inviter)] += 1
        seq = counts[(q.rule["id"], q.inviter)]
        if not tiered:
            if q.rule.get("prize_id"):
                rewards.append(_inviter_candidate(q, q.rule["prize_id"]))
            continue
        award = awards.get((q.rule["id"], seq), _UNKNOWN)
        if award is _UNKNOWN:
            award = awards[(q.rule["id"], seq)] = tier_award(q.rule, seq)
        if award is None:
            report.refuse(_inviter_candidate(q, None), "beyond_last_range", f"invitee #{seq}")
            continue
        rewards.append(_inviter_candidate(q, award.prize_id, award.rule_id))
        if award.bonus_rule_id and award.bonus_prize_id:
            rewards.append(
                _inviter_candidate(q, award.bonus_prize_id, award.bonus_rule_id, bonus=True)
            )
    return rewards
