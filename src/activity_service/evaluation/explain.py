"""Explain (SPEC §5): why a user did or did not earn, as things stand now.

Outcomes are stored when the engine decides, so a later fact can make one stale: an
invitee's "task not completed" stays behind once the task is done and the inviter is
rewarded, an outcome predates an event still queued for evaluation, deposits wait for the
daily run. Explain therefore reads the stored outcomes against what arrived since:

- an outcome recorded before a grant of the same rule (the user's own, or the inviter's
  reward for this invitee) or before an event that can decide the rule is shown as
  superseded (``current`` false, ``superseded_by`` says by what);
- amount tasks whose flows arrived after the rule was last decided (or never decided) get
  an ``awaiting_daily_run`` outcome saying which run decides them and when it is due.

The daily run stores no ``granted`` outcome next to the grants it makes (the grant is the
record of that decision, one row per grant is enough): a grant of a rule whose stored
outcome is older than the grant, or that has none, reads as that rule's ``granted`` outcome,
as the outcome the real-time path stores with its grants reads.

The order of outcomes and facts is the database's (``recorded_at`` against the events'
``received_at`` and the grants' ``created_at``), not the service clock, which a sandbox
tenant may have moved.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from activity_service.activities.repository import ActivityRepository
from activity_service.activities.rules import TaskType
from activity_service.evaluation.engine import (
    LOOKBACK,
    REAL_TIME_TRIGGERS,
    Window,
    in_daily_scope,
    run_day,
    settles_in,
)
from activity_service.evaluation.models import EvaluationOutcome, Grant
from activity_service.evaluation.repository import EvaluationRepository, GrantRepository
from activity_service.evaluation.schemas import Explanation, GrantRead, OutcomeRead
from activity_service.events.repository import EventRepository
from activity_service.progress.flows import CUMULATIVE_TASKS, EVENT_FLOWS, day_bounds
from activity_service.tenants.service import tenant_context
from service_kit.errors import NotFound

NOT_EARNED = frozenset({"granted", "already_granted"})


@dataclass(frozen=True)
class DueRun:
    """The daily run that will decide flows stored now, and when it is due."""

    day: date
    due_at: datetime
    reachable: bool  # False: no run looks at this window any more (past the look-back)


def next_run(
    flow_day: date,
    now: datetime,
    zone: ZoneInfo,
    run_at: str,
    done: Collection[date],
    window: Window,
    *,
    settle: bool,
) -> DueRun:
    """The run deciding flows of ``flow_day`` (for an at-end activity: its last day): the
    cron starts only the run of the day it owes at ``now``, and each run looks at every
    flow up to its day, so the run is that of the later of the two days, or the next one
    when that run is done."""
    day = max(flow_day, run_day(now, zone, run_at))
    while day in done:
        day += timedelta(days=1)
    hour, minute = (int(p) for p in run_at.split(":"))
    due_at = datetime.combine(day + timedelta(days=1), time(hour, minute), zone)
    start, end = day_bounds(day, zone)
    reachable = settles_in(window, start, end) if settle else in_daily_scope(window, start, end)
    return DueRun(day, due_at, reachable)


def _same_rule(outcome_rule: str, grant_rule: str) -> bool:
    """A grant of the rule itself or of one of its tiers, bonuses or invitee prizes."""
    return grant_rule == outcome_rule or grant_rule.startswith(f"{outcome_rule}:")


def _read(outcome: EvaluationOutcome, superseded_by: str | None = None) -> OutcomeRead:
    read = OutcomeRead.model_validate(outcome)
    read.current = superseded_by is None
    read.superseded_by = superseded_by
    return read


def with_grants(
    outcomes: Sequence[EvaluationOutcome], grants: Sequence[Grant]
) -> list[EvaluationOutcome]:
    """The stored outcomes, each rule's replaced by its ``granted`` outcome when a grant of
    the rule was made after it (or the rule has none): the grant decided it last."""
    by_rule = {o.rule_id: o for o in outcomes}
    for grant in grants:
        stored = by_rule.get(grant.rule_id)
        if stored is not None and stored.recorded_at >= grant.created_at:
            continue
        by_rule[grant.rule_id] = EvaluationOutcome(
            tenant_id=grant.tenant_id,
            activity_id=grant.activity_id,
            user_id=grant.user_id,
            rule_id=grant.rule_id,
            outcome="granted",
            detail=grant.grant_key,
            at=grant.created_at,
            recorded_at=grant.created_at,
        )
    return [by_rule[rule_id] for rule_id in sorted(by_rule)]


def supersede(
    outcomes: Sequence[EvaluationOutcome],
    grants: Sequence[Grant],
    events: Sequence[Any],
    rules: Sequence[dict[str, Any]],
) -> list[OutcomeRead]:
    """Each stored outcome, marked superseded when a grant of its rule or an event that
    can decide its rule arrived after it was recorded."""
    task_of = {r["id"]: TaskType(r["task"]) for r in rules}
    read = []
    for outcome in outcomes:
        by = None
        if outcome.outcome not in NOT_EARNED:
            later = [
                g
                for g in grants
                if _same_rule(outcome.rule_id, g.rule_id) and g.created_at >= outcome.recorded_at
            ]
            if later:
                g = later[0]
                by = f"granted later: {g.rule_id} to {g.user_id} at {g.created_at.isoformat()}"
        task = task_of.get(outcome.rule_id)
        if by is None and task is not None and task not in CUMULATIVE_TASKS:
            triggers = REAL_TIME_TRIGGERS.get(task, frozenset())
            later_events = [
                e for e in events if e.type in triggers and e.received_at > outcome.recorded_at
            ]
            if later_events:
                e = later_events[-1]
                by = (
                    f"{e.type} {e.event_id} received at {e.received_at.isoformat()}, after "
                    "this outcome: its evaluation is queued"
                )
        read.append(_read(outcome, by))
    return read


async def explain_user(
    session: AsyncSession, tenant_id: str, activity_id: uuid.UUID, user_id: str, now: datetime
) -> Explanation:
    activity = await ActivityRepository.from_session(session).get(tenant_id, activity_id)
    if activity is None:
        raise NotFound(f"No activity {activity_id} in this tenant.", code="activity_not_found")
    grant_repo = GrantRepository.from_session(session)
    grants = await grant_repo.of_activity_user(tenant_id, activity_id, user_id)
    # Rewards this user's tasks earned their inviter (referral activities).
    credited = await grant_repo.crediting(tenant_id, activity_id, user_id)
    repo = EvaluationRepository.from_session(session)
    stored = with_grants(await repo.outcomes(tenant_id, activity_id, user_id), grants)
    config = activity.config or {}
    rules: list[dict[str, Any]] = list(config.get("rules", []))
    events = await EventRepository.from_session(session).of_user(
        tenant_id, user_id, sorted({t for ts in REAL_TIME_TRIGGERS.values() for t in ts})
    )
    outcomes = supersede(stored, [*grants, *credited], events, rules)

    waiting = await _awaiting_daily_run(
        session, activity, rules, grants, stored, tenant_id, user_id, now
    )
    by_rule = {o.rule_id: o for o in outcomes}
    for pending in waiting:
        old = by_rule.get(pending.rule_id)
        if old is not None and old.current:
            old.current = False
            old.superseded_by = pending.detail
        outcomes.append(pending)

    current = [o for o in outcomes if o.current and o.outcome not in NOT_EARNED]
    if grants:
        hint = f"{len(grants)} grant(s); see each record_status"
    elif waiting:
        first = min(waiting, key=lambda o: o.due_at or now)
        hint = f"no grant yet: flows stored and waiting for the daily run due at {first.due_at}"
    elif current:
        hint = "no grant: " + ", ".join(sorted({o.outcome for o in current}))
    elif outcomes:
        hint = "no grant: earlier outcomes are superseded; evaluation is under way"
    else:
        hint = "no grant and no evaluation yet: no qualifying event was received"
    return Explanation(
        activity_id=activity.id,
        activity_code=activity.activity_code,
        user_id=user_id,
        status_hint=hint,
        rules=rules,
        grants=[GrantRead.model_validate(g) for g in grants],
        credited=[GrantRead.model_validate(g) for g in credited],
        outcomes=outcomes,
    )


async def _awaiting_daily_run(
    session: AsyncSession,
    activity: Any,
    rules: Sequence[dict[str, Any]],
    grants: Sequence[Grant],
    stored: Sequence[EvaluationOutcome],
    tenant_id: str,
    user_id: str,
    now: datetime,
) -> list[OutcomeRead]:
    """Amount-task rules whose flows in the window arrived after the rule was last decided
    (or that no run decided yet): they wait for a daily run, due at a known time."""
    if activity.starts_at is None or activity.ends_at is None:
        return []
    if activity.kind not in ("basic", "referral"):
        return []
    cumulative = [r for r in rules if TaskType(r["task"]) in CUMULATIVE_TASKS]
    if not cumulative:
        return []
    window = Window(activity.starts_at, activity.ends_at)
    settle = activity.kind == "basic" and (activity.config or {}).get("timing") == "at_end"
    settled = {g.settlement for g in grants if g.settlement}
    flows = [
        e
        for e in await EventRepository.from_session(session).of_user(
            tenant_id, user_id, tuple(EVENT_FLOWS)
        )
        if window.contains(e.occurred_at)
    ]
    if not flows:
        return []
    tenant = await tenant_context(session, tenant_id)
    recorded = {o.rule_id: o.recorded_at for o in stored}
    granted = {g.rule_id for g in grants}
    waiting: list[OutcomeRead] = []
    done: set[date] | None = None
    for rule in cumulative:
        if rule["id"] in granted or (settle and rule["task"] in settled):
            continue  # earned (each tier once), or settled: a later flow changes nothing
        since = recorded.get(rule["id"])
        new = [f for f in flows if since is None or f.received_at > since]
        if not new:
            continue
        if done is None:
            first = min(f.occurred_at for f in new).astimezone(tenant.zone).date()
            done = await EvaluationRepository.from_session(session).done_days(
                tenant_id, since=first - LOOKBACK
            )
        last_day = (window.ends_at - timedelta(microseconds=1)).astimezone(tenant.zone).date()
        flow_day = max(f.occurred_at for f in new).astimezone(tenant.zone).date()
        due = next_run(
            last_day if settle else min(flow_day, last_day),
            now,
            tenant.zone,
            tenant.daily_run_at,
            done,
            window,
            settle=settle,
        )
        kind = "the T+1 settlement" if settle else "the daily run"
        if due.reachable:
            detail = (
                f"{len(new)} flow(s) stored, the latest dated {flow_day.isoformat()}, are "
                f"waiting for {kind} of {due.day.isoformat()}, due at {due.due_at.isoformat()}"
            )
            outcome = "awaiting_daily_run"
        else:
            detail = (
                f"{len(new)} flow(s) stored after the last run that looks at this window "
                f"({(window.ends_at + LOOKBACK).date().isoformat()}): no run decides them"
            )
            outcome = "after_last_run"
        waiting.append(
            OutcomeRead(
                rule_id=rule["id"],
                outcome=outcome,
                detail=detail,
                at=now,
                current=True,
                due_at=due.due_at if due.reachable else None,
            )
        )
    return waiting
