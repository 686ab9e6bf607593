"""Dry-run of a basic activity (draft or running) against the stored events of a past
period: who would have earned what, what it would have cost in the base currency, and which
caps would have bitten — without writing a grant, an outcome or a record.

The period stands in for the activity's window; the decisions are the engine's own pure
rules (``engine.achievement`` per rule — tiers stack for real-time activities —, and
``engine.highest_tiers`` for at-end ones), eligibility as the evaluation checks it (segment
snapshot at the achievement, new/old-user attribute from the user's new-user rewards), and
per-user prize caps counted in rule order. The work is bounded: the period is at most
``MAX_PERIOD`` and at most ``user_limit`` users (the first by id) are decided, in chunks of
``CHUNK_SIZE`` read by one query each.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from activity_service.activities.models import Activity
from activity_service.activities.repository import ActivityRepository
from activity_service.activities.rules import TaskType
from activity_service.evaluation.daily_repository import DailyRunRepository
from activity_service.evaluation.engine import (
    Achievement,
    MissingRate,
    UserFacts,
    Window,
    achievement,
    highest_tiers,
)
from activity_service.evaluation.service import (
    ACTION_EVENT_TYPES,
    FACT_TYPES,
    MONEY_TYPES,
    _caps,
    facts_of,
)
from activity_service.events.repository import EventRepository
from activity_service.progress.flows import CUMULATIVE_TASKS
from activity_service.progress.repository import DeviceRepository
from activity_service.segments.repository import SegmentRepository
from activity_service.segments.snapshot import snapshot_at
from activity_service.tenants.fx import NoRate
from activity_service.tenants.service import TenantContext, tenant_context
from contracts.payloads import PrizeSummary
from service_kit.db import Database
from service_kit.errors import Conflict, NotFound, Unprocessable, UpstreamUnavailable
from service_kit.http import ServiceClient

MAX_PERIOD = timedelta(days=92)
MAX_USERS = 100_000
CHUNK_SIZE = 2000


@dataclass(frozen=True)
class WouldGrant:
    user_id: str
    rule_id: str
    prize_id: str
    task: str
    achieved_at: datetime


@dataclass
class DryRun:
    users_evaluated: int = 0
    users_truncated: bool = False
    grants: list[WouldGrant] = field(default_factory=list)
    # Why candidates were not granted: outcome → count (cap_reached, not_in_segment, …).
    refused: Counter[str] = field(default_factory=Counter)
    # Grants a per-user prize cap refused: prize → count.
    capped: Counter[str] = field(default_factory=Counter)


def event_types(rules: list[dict[str, Any]]) -> list[str]:
    """The event types that can bring a user into the activity's decisions."""
    types: set[str] = set()
    for rule in rules:
        task = TaskType(rule["task"])
        types.update(MONEY_TYPES if task in CUMULATIVE_TASKS else ACTION_EVENT_TYPES.get(task, ()))
    return sorted(types)


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
    for rule in rules:
        if at_end and TaskType(rule["task"]) in CUMULATIVE_TASKS:
            continue
        try:
            reached = achievement(rule, facts, window, zone=tenant.zone, rates=tenant.rates)
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


async def dry_run(
    db: Database, activity: Activity, tenant: TenantContext, window: Window, user_limit: int
) -> DryRun:
    rules = list((activity.config or {}).get("rules", []))
    at_end = (activity.config or {}).get("timing", "real_time") == "at_end"
    caps = _caps(activity)
    report = DryRun()
    async with db.session() as session:
        users = await EventRepository.from_session(session).users_in_scopes(
            tenant.tenant_id, [(event_types(rules), window.starts_at, window.ends_at)]
        )
    report.users_truncated = len(users) > user_limit
    users = users[:user_limit]
    report.users_evaluated = len(users)
    downloads = any(r["task"] == TaskType.download.value for r in rules)
    for start in range(0, len(users), CHUNK_SIZE):
        chunk = users[start : start + CHUNK_SIZE]
        async with db.session() as session:
            events = await EventRepository.from_session(session).of_users(
                tenant.tenant_id, chunk, FACT_TYPES
            )
            logins = (
                await DeviceRepository.from_session(session).first_new_device_logins(
                    tenant.tenant_id, chunk
                )
                if downloads
                else {}
            )
            candidates: list[tuple[str, dict[str, Any], Achievement]] = []
            for user in chunk:
                facts = facts_of(user, events.get(user, []), logins.get(user))
                done, problems = decide(rules, facts, window, tenant, at_end)
                report.refused.update(problems)
                candidates.extend((user, rule, reached) for rule, reached in done)
            candidates = await _eligible(session, activity, tenant, candidates, report)
        taken: Counter[tuple[str, str]] = Counter()
        for user, rule, reached in candidates:
            prize = str(rule["prize_id"])
            if prize in caps and taken[(user, prize)] >= caps[prize]:
                report.refused["cap_reached"] += 1
                report.capped[prize] += 1
                continue
            taken[(user, prize)] += 1
            report.grants.append(
                WouldGrant(user, rule["id"], prize, reached.task.value, reached.achieved_at)
            )
    return report


async def _eligible(
    session: Any,
    activity: Activity,
    tenant: TenantContext,
    candidates: list[tuple[str, dict[str, Any], Achievement]],
    report: DryRun,
) -> list[tuple[str, dict[str, Any], Achievement]]:
    """Segment snapshot and new/old-user attribute, as the evaluation checks them."""
    if activity.segment_id is not None and candidates:
        refresh = activity.segment_refresh or "5m"

        def snap(reached: Achievement) -> datetime:
            return snapshot_at(reached.achieved_at, refresh, tenant.zone)

        members = await SegmentRepository.from_session(session).members_at(
            tenant.tenant_id,
            activity.segment_id,
            sorted({(user, snap(reached)) for user, _, reached in candidates}),
        )
        kept = [c for c in candidates if (c[0], snap(c[2])) in members]
        report.refused["not_in_segment"] += len(candidates) - len(kept)
        candidates = kept
    attribute = activity.attribute or "unlimited"
    if attribute not in ("new_user", "old_user") or not candidates:
        return candidates
    rewards: dict[str, list[tuple[Any, datetime]]] = {}
    for user, other, at in await DailyRunRepository.from_session(session).new_user_rewards(
        tenant.tenant_id, sorted({c[0] for c in candidates})
    ):
        rewards.setdefault(user, []).append((other, at))
    kept = []
    for user, rule, reached in candidates:
        had = any(
            other != activity.id and at <= reached.achieved_at
            for other, at in rewards.get(user, ())
        )
        if had == (attribute == "new_user"):
            report.refused["not_new_user" if had else "not_old_user"] += 1
        else:
            kept.append((user, rule, reached))
    return kept


@dataclass
class PrizeCost:
    prize_id: str
    grants: int
    unit_amount: Decimal | None
    currency: str | None
    total_base: Decimal | None  # None: no cost known, or no FX rate to the base currency


async def costs(
    http: ServiceClient,
    reward_url: str,
    tenant: TenantContext,
    grants: list[WouldGrant],
    at: datetime,
) -> list[PrizeCost]:
    """What the grants would cost per prize, converted to the base currency at ``at``
    (a cash prize costs its amount; others their cost, when the operator set one)."""
    counts = Counter(g.prize_id for g in grants)
    result = []
    for prize_id, n in sorted(counts.items()):
        response = await http.get(reward_url, f"/v1/prizes/{prize_id}", tenant_id=tenant.tenant_id)
        if response.status_code == 404:
            result.append(PrizeCost(prize_id, n, None, None, None))
            continue
        if response.status_code != 200:
            raise UpstreamUnavailable(f"reward_service answered {response.status_code}.")
        body = response.json()
        prize = PrizeSummary.model_validate(body)
        amount, currency = prize.cost_amount, prize.cost_currency
        if amount is None and prize.type == "cash":
            details = body.get("details") or {}
            if details.get("amount") is not None:
                amount, currency = Decimal(str(details["amount"])), details.get("currency")
        total = None
        if amount is not None and currency:
            try:
                total = tenant.rates.convert(amount * n, currency, tenant.base_currency, at)
            except NoRate:
                total = None
        result.append(PrizeCost(prize_id, n, amount, currency, total))
    return result


def caps_of(activity: Activity) -> dict[str, int]:
    """Per-user prize caps of the activity: prize id → times one user may receive it."""
    return _caps(activity)


@dataclass
class DryRunAnswer:
    activity: Activity
    window: Window
    tenant: TenantContext
    report: DryRun
    prize_costs: list[PrizeCost]


async def dry_run_activity(
    db: Database,
    http: ServiceClient,
    reward_url: str,
    tenant_id: str,
    activity_id: Any,
    window: Window,
    user_limit: int,
    now: datetime,
) -> DryRunAnswer:
    """Check the request, then dry-run the activity over ``window`` (a past period)."""
    if window.ends_at <= window.starts_at:
        raise Unprocessable("ends_at must be after starts_at.", code="invalid_period")
    if window.ends_at > now:
        raise Unprocessable(
            "A dry-run replays stored events of a past period; ends_at is in the future.",
            code="period_not_over",
        )
    if window.ends_at - window.starts_at > MAX_PERIOD:
        raise Unprocessable(
            f"A dry-run covers at most {MAX_PERIOD.days} days.", code="period_too_long"
        )
    async with db.session() as session:
        activity = await ActivityRepository.from_session(session).get(tenant_id, activity_id)
        if activity is None:
            raise NotFound(f"No activity {activity_id} in this tenant.", code="activity_not_found")
        if activity.kind != "basic":
            raise Unprocessable(
                "Only basic activities can be dry-run for now.", code="dry_run_unsupported"
            )
        if activity.state == "closed":
            raise Conflict("A closed activity cannot be dry-run.", code="activity_closed")
        tenant = await tenant_context(session, tenant_id)
    report = await dry_run(db, activity, tenant, window, user_limit)
    prize_costs = await costs(http, reward_url, tenant, report.grants, window.ends_at)
    return DryRunAnswer(activity, window, tenant, report, prize_costs)
