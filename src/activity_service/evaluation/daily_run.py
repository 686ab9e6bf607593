"""The daily run of a tenant's local day (SPEC §1.5), deciding users in sets.

The run decides the cumulative amount tasks of real-time activities up to the end of the day
(each tier once) and settles at-end activities that ended by then at T+1 (the highest tier
only). It works in *passes* over the users with events in scope, sorted by user id and cut
into chunks; one chunk is one transaction:

- the events of all users of the chunk are read by one query (and their first new-device
  logins by another, only when a download task is settled), and turned into ``UserFacts``;
- every basic activity of the pass is decided for them by the same pure rules the real-time
  path uses (``engine.achievement`` / ``highest_tiers``), activity after activity in
  publication order, so each user sees the decisions in the order the per-user run made them;
- segment membership and the new/old-user attribute are checked per chunk (one membership
  query per activity; the users' advisory locks and their new-user rewards once), and the
  grants, cap slots, outbox messages and outcomes are written by multi-row statements
  (``daily_repository.py``): grants unique on their deterministic keys, cap slots by a
  conditional upsert, a lost race giving its slot back;
- the pass's cursor (the last user of the chunk) is saved in ``daily_runs.progress`` in the
  same transaction, so a crash resumes after the last finished chunk, and re-running a done
  day grants nothing (grant keys).

All basic activities in scope share one pass, so each user's facts are read once per run.
Referral activities keep a pass each (their inviter counters and the one regular activity per
inviter depend on the order invitees are decided in, activity after activity) and decide each
invitee with ``service.evaluate_referral``, which asks referral_service for the effective
inviter of users who reached a task; chunks of them are smaller, since they call out.

``progress`` holds ``{"passes": [{"activities": [ids], "after": user | null, "done": bool}]}``;
an activity that comes into scope while a run is under way gets a pass of its own. Progress
saved per activity by earlier versions (``{activity id: last user | "done"}``) is read as one
pass per activity.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from itertools import groupby
from operator import itemgetter
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from activity_service.activities.models import Activity
from activity_service.activities.rules import TaskType
from activity_service.evaluation import service
from activity_service.evaluation.daily_repository import (
    DailyRunRepository,
    ExistingGrants,
    NewGrant,
    NewGrants,
)
from activity_service.evaluation.dry_run_repository import DryRunRepository
from activity_service.evaluation.engine import (
    LOOKBACK,
    Achievement,
    MissingRate,
    UserFacts,
    Window,
    achievement,
    grant_key,
    highest_tiers,
    in_daily_scope,
    not_done_reason,
    settles_in,
)
from activity_service.evaluation.limits import (
    BUDGET_EXHAUSTED,
    QUANTITY_EXHAUSTED,
    Limits,
    NoCost,
    limits_of,
)
from activity_service.evaluation.referral_client import ReferralLookup
from activity_service.evaluation.repository import EvaluationRepository
from activity_service.evaluation.service import (
    ACTION_EVENT_TYPES,
    FACT_TYPES,
    MONEY_TYPES,
    _activity_name,
    _activity_names,
    window_of,
)
from activity_service.events.repository import EventRepository
from activity_service.progress.flows import (
    CUMULATIVE_TASKS,
    FIRST_TASKS,
    Flow,
    Totals,
    convert,
    day_bounds,
    local_day,
    metric,
)
from activity_service.progress.repository import DeviceRepository
from activity_service.segments.repository import SegmentRepository
from activity_service.segments.snapshot import snapshot_at
from activity_service.tenants.fx import NoRate, RateTable
from activity_service.tenants.service import TenantContext, tenant_context
from contracts import jobs
from contracts.payloads import Grant as GrantPayload
from contracts.payloads import IssuanceForm, LockUp
from service_kit.clock import Clock
from service_kit.db import Database

log = logging.getLogger(__name__)

CHUNK_SIZE = 1000
"""Users per transaction of a basic pass (also bounds the advisory locks one chunk holds)."""
REFERRAL_CHUNK_SIZE = 100
"""Users per transaction of a referral pass: it calls referral_service inside."""


@dataclass
class DailyRunResult:
    tenant_id: str
    day: date
    done: bool
    grants: int


# --------------------------------------------------------------------------- scope


@dataclass(frozen=True)
class Scope:
    """An activity as one day's run decides it."""

    activity: Activity
    window: Window
    settle: bool  # an at-end basic activity settled at T+1, else cumulative tasks to `until`
    until: datetime
    types: frozenset[str]  # the event types that bring a user into the run
    rules: tuple[dict[str, Any], ...]

    @property
    def id(self) -> str:
        return str(self.activity.id)

    @property
    def referral(self) -> bool:
        return self.activity.kind == "referral"

    def covers(self, records: Iterable[Sequence[Any]]) -> bool:
        """Does the user have an event that brings them into this activity's run? Reads
        the user's event records (``DryRunRepository.fact_records``: type second, time
        fifth)."""
        since, until, types = self.window.starts_at, self.until, self.types
        return any(r[1] in types and since <= r[4] < until for r in records)

    @property
    def needs_devices(self) -> bool:
        return self.settle and any(r["task"] == TaskType.download.value for r in self.rules)


def _types_for(activity: Activity, settle: bool) -> frozenset[str]:
    """Event types whose users the run must look at for this activity."""
    types: set[str] = set()
    for rule in (activity.config or {}).get("rules", []):
        task = TaskType(rule["task"])
        if task in CUMULATIVE_TASKS:
            types.update(MONEY_TYPES)
        elif settle:
            types.update(ACTION_EVENT_TYPES.get(task, ()))
    return frozenset(types)


def scopes_of(
    activities: Sequence[Activity], day_start: datetime, day_end: datetime
) -> list[Scope]:
    """The activities the run of [day_start, day_end) decides, in publication order."""
    scopes = []
    for activity in activities:
        window = window_of(activity)
        if window is None:
            continue
        timing = (activity.config or {}).get("timing", "real_time")
        settle = activity.kind == "basic" and timing == "at_end"
        if settle and not settles_in(window, day_start, day_end):
            continue
        if not settle and not in_daily_scope(window, day_start, day_end):
            continue
        if activity.kind == "basic" and not settle and timing != "real_time":
            continue  # decides nothing daily
        types = _types_for(activity, settle)
        if not types:
            continue
        until = window.ends_at if settle else min(day_end, window.ends_at)
        rules = tuple((activity.config or {}).get("rules", []))
        scopes.append(Scope(activity, window, settle, until, types, rules))
    return scopes


# --------------------------------------------------------------------------- facts


class SharedFlows:
    """One user's flows, converted and summed once for every activity of the pass.

    Cumulative amount tasks ask "the first local day whose end-of-day metric over the
    window reaches the threshold" (``flows.cumulative_reached``). The day-end metrics depend
    only on the task, the rule's currency and the window, not on the threshold or the
    activity, so they are computed once per (task, currency, since, until) and every
    activity and tier of the pass reads its answer from them; the flows are converted once
    per currency. Other tasks are decided by ``engine.achievement`` itself."""

    __slots__ = ("facts", "_converted", "_day_ends", "_reached")

    def __init__(self, facts: UserFacts) -> None:
        self.facts = facts
        self._converted: dict[str, list[Flow] | MissingRate] = {}
        self._day_ends: dict[tuple[Any, ...], list[tuple[datetime, Decimal]]] = {}
        # Activities of a pass often ask the same question (task, currency, threshold,
        # window): answered once per user.
        self._reached: dict[tuple[Any, ...], Achievement | None] = {}

    def converted(self, currency: str, rates: RateTable) -> list[Flow]:
        found = self._converted.get(currency)
        if found is None:
            try:
                found = convert(self.facts.flows, currency, rates)
            except NoRate as exc:
                found = MissingRate(str(exc))
            self._converted[currency] = found
        if isinstance(found, MissingRate):
            raise MissingRate(str(found))
        return found

    def day_ends(
        self,
        task: TaskType,
        currency: str,
        since: datetime,
        until: datetime,
        zone: ZoneInfo,
        rates: RateTable,
    ) -> list[tuple[datetime, Decimal]]:
        """(last flow of the day, metric at the day's end) of each local day with flows
        in [since, until), in time order."""
        key = (task, currency, since, until, zone)
        found = self._day_ends.get(key)
        if found is None:
            found = []
            totals = Totals()
            in_window = [
                f for f in self.converted(currency, rates) if since <= f.occurred_at < until
            ]
            days = [local_day(f.occurred_at, zone) for f in in_window]
            for index, flow in enumerate(in_window):
                totals.add(flow)
                if index + 1 == len(in_window) or days[index + 1] != days[index]:
                    found.append((flow.occurred_at, metric(task, totals)))
            self._day_ends[key] = found
        return found

    def achievement(
        self,
        rule: dict[str, Any],
        window: Window,
        *,
        zone: ZoneInfo,
        rates: RateTable,
        until: datetime,
    ) -> Achievement | None:
        """``engine.achievement(rule, facts, window, …)``, sharing the flow sums."""
        task = _TASKS[rule["task"]]
        if task not in CUMULATIVE_TASKS or task in FIRST_TASKS:
            return achievement(rule, self.facts, window, zone=zone, rates=rates, until=until)
        # The window's bounds, not the window: a frozen dataclass hashes and compares in
        # Python, and the activities of a pass ask with equal windows of their own.
        question = (
            task,
            rule["currency"],
            rule["threshold"],
            window.starts_at,
            window.ends_at,
            until,
            zone,
        )
        answer = self._reached.get(question, _UNANSWERED)
        if answer is not _UNANSWERED:
            return answer
        limit = min(until, window.ends_at)
        threshold = _threshold(rule["threshold"])
        answer = None
        for at, value in self.day_ends(
            task, rule["currency"], window.starts_at, limit, zone, rates
        ):
            if value >= threshold:
                answer = Achievement(task, at, value)
                break
        self._reached[question] = answer
        return answer


_UNANSWERED: Any = object()
"""``SharedFlows._reached`` has no answer yet (its answers may be None)."""

_TASKS = {task.value: task for task in TaskType}
"""A rule's task by its name: looked up per user and rule, cheaper than ``TaskType(…)``."""
_TASK_NAMES = {task: task.value for task in TaskType}
"""A task's name, per grant: cheaper than the enum's ``.value``."""

_THRESHOLDS: dict[Any, Decimal] = {}


def _threshold(value: Any) -> Decimal:
    """A rule's threshold as a decimal, parsed once per distinct value."""
    found = _THRESHOLDS.get(value)
    if found is None:
        found = Decimal(str(value))
        if len(_THRESHOLDS) < 10_000:
            _THRESHOLDS[value] = found
    return found


# --------------------------------------------------------------------------- pure decisions


class Candidate(NamedTuple):
    """A rule the user completed: a grant unless eligibility, the key or the cap refuse.
    A named tuple: made once per decision (a frozen dataclass costs three times as much)."""

    rule: dict[str, Any]
    done: Achievement
    period: str
    # The at-end tier of a cumulative task: one per user and task, ever (SPEC §1.5).
    settles: bool = False


class Decision(NamedTuple):
    """What the rules say of one user in one basic activity, before anything is written
    (made with its two lists: ``Decision([], [])``)."""

    outcomes: list[tuple[str, str, str | None]]
    candidates: list[Candidate]


def decide_basic(
    scope: Scope, facts: UserFacts, tenant: TenantContext, shared: SharedFlows | None = None
) -> Decision:
    """``service.evaluate_basic`` in "daily" or "settle" mode, without its writes. The
    activities of a pass share each user's flow sums (``shared``)."""
    decision = Decision([], [])
    if shared is None:
        shared = SharedFlows(facts)
    window = scope.window
    rules = list(scope.rules)
    period = "end" if scope.settle else "once"
    for rule in rules:
        cumulative = _TASKS[rule["task"]] in CUMULATIVE_TASKS
        if cumulative == scope.settle:
            continue  # daily: cumulative tasks only; settle: those below, highest tier only
        try:
            done = shared.achievement(
                rule, window, zone=tenant.zone, rates=tenant.rates, until=scope.until
            )
        except MissingRate as exc:
            decision.outcomes.append((rule["id"], "no_fx_rate", str(exc)))
            continue
        if done is None:
            reason = not_done_reason(_TASKS[rule["task"]], facts, window, None)
            decision.outcomes.append((rule["id"], reason, None))
            continue
        decision.candidates.append(Candidate(rule, done, period))
    if scope.settle:
        try:
            tiers = highest_tiers(rules, facts, window, tenant.rates, tenant.base_currency)
        except MissingRate as exc:
            decision.outcomes.append(("*", "no_fx_rate", str(exc)))
            return decision
        for rule, last_at, value in tiers:
            done = Achievement(TaskType(rule["task"]), last_at, value)
            decision.candidates.append(Candidate(rule, done, "end", settles=True))
    return decision


class _Payloads:
    """Grant payloads (the ``reward.create_from_grant`` contract) of one activity: one
    template per rule, validated once; each grant's own values are set when it is written
    (``DailyRunRepository.insert_grants``)."""

    def __init__(self, activity: Activity, tenant_id: str) -> None:
        self.activity = activity
        self.index: dict[str, int] = {}
        self.grants = NewGrants(
            tenant_id=tenant_id,
            activity_id=activity.id,
            activity_code=activity.activity_code,
            new_user_reward=activity.kind == "basic" and activity.attribute == "new_user",
            templates=[],
        )

    def add(
        self,
        key: str,
        user_id: str,
        app_id: str | None,
        candidate: Candidate,
        *,
        cap_slot: bool,
        total_slot: bool,
        budget_cost: Decimal | None,
    ) -> None:
        activity, rule, done = self.activity, candidate.rule, candidate.done
        index = self.index.get(rule["id"])
        if index is None:
            lock_up = rule.get("lock_up")
            template = GrantPayload(
                tenant_id=activity.tenant_id,
                grant_key=key,
                activity_code=activity.activity_code,
                activity_name=_activity_name(activity),
                activity_names=_activity_names(activity),
                rule_id=rule["id"],
                user_id=user_id,
                counterpart_id=None,
                task=done.task.value,
                achieved_at=done.achieved_at,
                prize_id=str(rule["prize_id"]),
                issuance_form=IssuanceForm(activity.issuance_form),
                lock_up=LockUp.model_validate(lock_up) if lock_up else None,
            )
            index = self.index[rule["id"]] = len(self.grants.templates)
            self.grants.templates.append(template.model_dump(mode="json"))
        task = _TASK_NAMES[done.task]
        self.grants.rows.append(
            NewGrant(  # positional: one per grant, and keywords cost a third more
                key,
                user_id,
                app_id,
                index,
                task,
                done.achieved_at,
                done.enterprise_name,
                task if candidate.settles else None,
                cap_slot,
                total_slot,
                budget_cost,
            )
        )


# --------------------------------------------------------------------------- a chunk


class _BasicChunk:
    """The basic activities of a pass decided for one chunk of users, in one transaction."""

    def __init__(self, session: AsyncSession, tenant: TenantContext, now: datetime) -> None:
        self.session = session
        self.tenant = tenant
        self.now = now
        self.repo = DailyRunRepository.from_session(session)
        self.outcomes: dict[tuple[uuid.UUID, str, str], tuple[str, str | None]] = {}
        # New-user rewards (activity, achieved at) of the users whose attribute is checked.
        self.new_user_rewards: dict[str, list[tuple[uuid.UUID, datetime]]] = {}
        self.granted = 0
        self.existing = ExistingGrants()

    def outcome(
        self, activity: Activity, user_id: str, rule_id: str, outcome: str, detail: str | None
    ) -> None:
        self.outcomes[(activity.id, user_id, rule_id)] = (outcome, detail)

    async def run(self, prepared: _Prepared) -> None:
        decided, facts = prepared.decided, prepared.facts
        # Users who may get a reward of a new/old-user activity: locked (as the real-time
        # path locks one user) before their new-user rewards are read.
        checked = sorted(
            {
                user
                for scope, per_user in decided
                if scope.activity.attribute in ("new_user", "old_user")
                for user, decision in per_user
                if decision.candidates
            }
        )
        if checked:
            await self.repo.lock_users(self.tenant.tenant_id, checked)
            self.new_user_rewards = {user: [] for user in checked}
            for user, activity_id, at in await self.repo.new_user_rewards(
                self.tenant.tenant_id, checked
            ):
                self.new_user_rewards[user].append((activity_id, at))
        # The grants they already have in the pass's activities, read once for the chunk
        # (after the locks, as the real-time path reads a user's grants).
        self.existing = await self.repo.existing_grants(
            self.tenant.tenant_id,
            [scope.activity.id for scope, per_user in decided if per_user],
            sorted({user for _, per_user in decided for user, d in per_user if d.candidates}),
        )
        for scope, per_user in decided:
            await self.apply(scope, per_user, facts)
        await self.repo.record_outcomes(
            self.tenant.tenant_id,
            # in key order, so two runs racing on the same users lock rows in one order
            [(a, u, r, o, d) for (a, u, r), (o, d) in sorted(self.outcomes.items())],
            self.now,
        )

    def _had_new_user_reward(
        self, user_id: str, activity: Activity, at: datetime, *, inclusive: bool
    ) -> bool:
        return any(
            other != activity.id and (when <= at if inclusive else when < at)
            for other, when in self.new_user_rewards.get(user_id, ())
        )

    async def _eligible(
        self, activity: Activity, pending: list[tuple[str, Candidate]]
    ) -> list[tuple[str, Candidate]]:
        """``service._basic_eligibility`` for a whole activity's candidates."""
        if activity.segment_id is not None and pending:
            refresh = activity.segment_refresh or "5m"
            asked = {
                (user, snapshot_at(c.done.achieved_at, refresh, self.tenant.zone))
                for user, c in pending
            }
            members = await SegmentRepository.from_session(self.session).members_at(
                self.tenant.tenant_id, activity.segment_id, sorted(asked)
            )
            kept = []
            for user, c in pending:
                if (user, snapshot_at(c.done.achieved_at, refresh, self.tenant.zone)) in members:
                    kept.append((user, c))
                else:
                    self.outcome(activity, user, c.rule["id"], "not_in_segment", None)
            pending = kept
        attribute = activity.attribute or "unlimited"
        if attribute not in ("new_user", "old_user"):
            return pending
        kept = []
        for user, c in pending:
            had = self._had_new_user_reward(
                user, activity, c.done.achieved_at, inclusive=attribute == "new_user"
            )
            if attribute == "new_user" and had:
                self.outcome(activity, user, c.rule["id"], "not_new_user", None)
            elif attribute == "old_user" and not had:
                self.outcome(activity, user, c.rule["id"], "not_old_user", None)
            else:
                kept.append((user, c))
        return kept

    async def apply(
        self, scope: Scope, per_user: list[tuple[str, Decision]], facts: dict[str, UserFacts]
    ) -> None:
        """Write one activity's decisions for the chunk: ``write_grant`` in sets."""
        activity, tenant_id = scope.activity, self.tenant.tenant_id
        pending: list[tuple[str, Candidate]] = []
        for user, decision in per_user:
            for rule_id, outcome, detail in decision.outcomes:
                self.outcome(activity, user, rule_id, outcome, detail)
            pending.extend((user, c) for c in decision.candidates)
        if not pending:
            return
        pending = await self._eligible(activity, pending)
        activity_key = str(activity.id)
        keyed = [
            (grant_key(activity_key, c.rule["id"], user, None, c.period), user, c)
            for user, c in pending
        ]
        existing = self.existing
        fresh: dict[str, tuple[str, Candidate]] = {}
        for key, user, c in keyed:
            if key in existing.keys or key in fresh:  # already granted: nothing to record
                continue
            paid = (
                existing.settled.get((activity.id, user, c.done.task.value)) if c.settles else None
            )
            if paid is not None:
                # Settled before with another tier (a late flow or an FX correction moved
                # the metric): no second reward; the operator sees the difference.
                self.outcome(
                    activity,
                    user,
                    c.rule["id"],
                    "tier_changed_after_settlement",
                    f"settled with {paid}; the window now reaches {c.rule['id']} "
                    f"({c.done.value} {c.rule.get('currency', '')}): no second reward",
                )
                continue
            fresh[key] = (user, c)
        limits = limits_of(activity.config)
        caps = limits.caps
        # Taken in the real-time path's order: cap slots, then totals, then the budget.
        slots = await self._claim_slots(activity, caps, fresh)
        held = _Held(cap=slots)
        await self._claim_totals(activity, limits, fresh, held)
        await self._claim_budget(activity, limits, fresh, held)
        payloads = _Payloads(activity, tenant_id)
        for key, (user, c) in fresh.items():
            payloads.add(
                key,
                user,
                facts[user].app_id,
                c,
                cap_slot=key in slots,
                total_slot=key in held.total,
                budget_cost=held.cost.get(key),
            )
        inserted = await self.repo.insert_grants(
            payloads.grants, "reward", jobs.REWARD_CREATE_FROM_GRANT
        )
        for key, (user, c) in fresh.items():
            prize_id = str(c.rule["prize_id"])
            if key in inserted:
                # The grant is the record of this decision: no "granted" outcome row next
                # to it (explain reads a grant newer than a rule's outcome as its outcome).
                self.granted += 1
                if activity.attribute == "new_user" and user in self.new_user_rewards:
                    self.new_user_rewards[user].append((activity.id, c.done.achieved_at))
                continue
            # A concurrent evaluation inserted it first: give what it took back.
            held.give_back(key, user, prize_id)
            self.outcome(
                activity,
                user,
                c.rule["id"],
                "already_granted",
                f"prize {prize_id} cap {caps.get(prize_id)}",
            )
        await self._give_back(activity, held)

    async def _give_back(self, activity: Activity, held: _Held) -> None:
        """Return what this chunk took for grants it did not write (cap, total, budget)."""
        tenant_id = self.tenant.tenant_id
        for prize_id, counts in held.lost_cap.items():
            await self.repo.release_cap_slots(tenant_id, activity.id, uuid.UUID(prize_id), counts)
        for prize_id, n in held.lost_total.items():
            await self.repo.release_total(tenant_id, activity.id, uuid.UUID(prize_id), n)
        if held.lost_cost:
            await self.repo.release_budget(tenant_id, activity.id, held.lost_cost)

    def _refuse(
        self,
        activity: Activity,
        fresh: dict[str, tuple[str, Candidate]],
        held: _Held,
        key: str,
        reason: str,
        detail: str,
    ) -> None:
        user, c = fresh.pop(key)
        held.give_back(key, user, str(c.rule["prize_id"]))
        self.outcome(activity, user, c.rule["id"], reason, detail)

    async def _claim_totals(
        self,
        activity: Activity,
        limits: Limits,
        fresh: dict[str, tuple[str, Candidate]],
        held: _Held,
    ) -> None:
        """One of each prize's total quantity per candidate, in candidate order (users by
        id): the first ones the rest of the total covers get it, the others are refused."""
        for prize_id, total in limits.totals.items():
            keys = [k for k, (_, c) in fresh.items() if str(c.rule["prize_id"]) == prize_id]
            if not keys:
                continue
            taken = await self.repo.take_total(
                self.tenant.tenant_id, activity.id, uuid.UUID(prize_id), total, len(keys)
            )
            held.total.update(keys[:taken])
            for key in keys[taken:]:
                detail = f"prize {prize_id} total {total}"
                self._refuse(activity, fresh, held, key, QUANTITY_EXHAUSTED, detail)

    async def _claim_budget(
        self,
        activity: Activity,
        limits: Limits,
        fresh: dict[str, tuple[str, Candidate]],
        held: _Held,
    ) -> None:
        """Each candidate's cost from the budget, in candidate order; a candidate the rest
        of the budget does not cover is refused (a cheaper one after it may still fit)."""
        if limits.budget is None:
            return
        asks: list[tuple[str, Decimal]] = []
        for key, (_, c) in list(fresh.items()):
            try:
                asks.append(
                    (key, limits.cost(str(c.rule["prize_id"]), self.tenant.rates, self.now))
                )
            except NoCost as unknown:
                self._refuse(activity, fresh, held, key, unknown.reason, str(unknown))
        if not asks:
            return
        taken = await self.repo.take_budget(self.tenant.tenant_id, activity.id, limits.budget, asks)
        for key, cost in asks:
            if key in taken:
                held.cost[key] = cost
                continue
            detail = f"budget {limits.budget} {limits.currency}; this reward costs {cost}"
            self._refuse(activity, fresh, held, key, BUDGET_EXHAUSTED, detail)

    async def _claim_slots(
        self,
        activity: Activity,
        caps: dict[str, int],
        fresh: dict[str, tuple[str, Candidate]],
    ) -> set[str]:
        """Take a cap slot for each capped candidate, in rule order per user: round n asks
        every user's n-th slot of a prize with one conditional upsert. Candidates refused
        are removed from ``fresh`` with a ``cap_reached`` outcome; returns the keys that
        hold a slot."""
        asks: dict[str, dict[str, list[str]]] = {}
        for key, (user, c) in fresh.items():
            prize_id = str(c.rule["prize_id"])
            if prize_id in caps:
                asks.setdefault(prize_id, {}).setdefault(user, []).append(key)
        held: set[str] = set()
        for prize_id, per_user in asks.items():
            cap = caps[prize_id]
            waiting = dict(per_user)
            round_ = 0
            while waiting:
                taken = await self.repo.claim_cap_slots(
                    self.tenant.tenant_id, activity.id, uuid.UUID(prize_id), cap, list(waiting)
                )
                for user, keys in list(waiting.items()):
                    if user in taken:
                        held.add(keys[round_])
                        if len(keys) == round_ + 1:
                            del waiting[user]
                        continue
                    # the cap is reached: this and every later ask of the user are refused
                    for key in keys[round_:]:
                        _, c = fresh.pop(key)
                        self.outcome(
                            activity,
                            user,
                            c.rule["id"],
                            "cap_reached",
                            f"prize {prize_id} cap {cap}",
                        )
                    del waiting[user]
                round_ += 1
        return held


@dataclass
class _Held:
    """What a chunk took for its candidates of one activity, and what it must give back for
    the ones it did not write."""

    cap: set[str]
    total: set[str] = field(default_factory=set)
    cost: dict[str, Decimal] = field(default_factory=dict)
    lost_cap: dict[str, Counter[str]] = field(default_factory=dict)
    lost_total: Counter[str] = field(default_factory=Counter)
    lost_cost: Decimal = Decimal(0)

    def give_back(self, key: str, user: str, prize_id: str) -> None:
        if key in self.cap:
            self.lost_cap.setdefault(prize_id, Counter())[user] += 1
        if key in self.total:
            self.lost_total[prize_id] += 1
        if key in self.cost:
            self.lost_cost += self.cost.pop(key)


@dataclass
class _Prepared:
    """A chunk read and decided by the pure rules; nothing of it is written yet."""

    users: list[str]
    events: dict[str, list[Any]]
    facts: dict[str, UserFacts]
    decided: list[tuple[Scope, list[tuple[str, Decision]]]]


async def _prepare(
    db: Database, tenant: TenantContext, scopes: Sequence[Scope], users: list[str]
) -> _Prepared:
    """Read the chunk's facts (events, and first new-device logins when a download task is
    settled) and decide its basic activities. Only reads, in a transaction of its own, so
    the next chunk is prepared while the current one is written: events are never changed,
    and everything that depends on what the run writes is decided when writing."""
    # Built by the dry-run's reader of the same records (it imports this module's
    # SharedFlows, so it is imported here, once it is loaded).
    from activity_service.evaluation.dry_run_decisions import facts_of_records

    async with db.session() as session:
        # only the payload fields the rules read, as text: no JSON decoded per event
        records = await DryRunRepository.from_session(session).fact_records(
            tenant.tenant_id, users, FACT_TYPES
        )
        first_logins = (
            await DeviceRepository.from_session(session).first_new_device_logins(
                tenant.tenant_id, users
            )
            if any(s.needs_devices for s in scopes)
            else {}
        )
    with collector_paused():
        events = {user: list(rows) for user, rows in groupby(records, key=itemgetter(0))}
        facts = {u: facts_of_records(u, events.get(u, ()), first_logins.get(u)) for u in users}
        shared = {u: SharedFlows(f) for u, f in facts.items()}
        # Activities with the same window and event types cover the same users: found once.
        covered: dict[tuple[Any, ...], list[str]] = {}
        decided = []
        for scope in scopes:
            if scope.referral:
                continue
            key = (scope.types, scope.window.starts_at, scope.until)
            if key not in covered:
                covered[key] = [u for u in users if scope.covers(events.get(u, ()))]
            decided.append(
                (
                    scope,
                    [(u, decide_basic(scope, facts[u], tenant, shared[u])) for u in covered[key]],
                )
            )
    return _Prepared(users, events, facts, decided)


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for a synchronous stretch of deciding.

    Deciding a chunk allocates a great many small objects that stay alive until the chunk
    is written and form no cycles; the collector, triggered by allocation counts, walks
    them again and again (about half of the deciding time, measured). Inside a synchronous
    stretch no other task of the event loop runs, so pausing it there changes nothing
    else; it runs again, as usual, at the next allocations after it. Inside a run
    (``collector_spared``) what the stretch made is frozen as it ends, so the collector
    does not walk it afterwards either."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        if _sparing:
            gc.freeze()
        gc.enable()


_sparing = 0  # daily runs of this process under way (``collector_spared``)


@contextmanager
def collector_spared() -> Iterator[None]:
    """Keep the collector off the objects a run's chunks are decided from, for the run.

    A chunk's facts and decisions (tens of thousands of objects) live while it is written
    and the next one is decided; every collection of the older generations walked them
    again, and every full one walked the whole process too: a fifth of a run's Python
    CPU (measured). The objects alive when the run starts, and those a deciding stretch
    made (``collector_paused``), are frozen (``gc.freeze``): reference counting still frees
    them, the collector skips them. Everything frozen is handed back to the collector when
    the last run of the process ends; a cycle that became garbage meanwhile (any task's)
    is collected then, not before."""
    global _sparing
    if _sparing == 0:
        gc.freeze()
    _sparing += 1
    try:
        yield
    finally:
        _sparing -= 1
        if _sparing == 0:
            gc.unfreeze()


async def _write(
    session: AsyncSession,
    tenant: TenantContext,
    scopes: Sequence[Scope],
    prepared: _Prepared,
    now: datetime,
    referral: ReferralLookup | None,
) -> int:
    """Write a prepared chunk's decisions (referral activities are decided here, per
    invitee); returns the grants made."""
    await DailyRunRepository.from_session(session).plan_each_statement()
    granted = 0
    if prepared.decided:
        chunk = _BasicChunk(session, tenant, now)
        await chunk.run(prepared)
        granted += chunk.granted
    for scope in scopes:
        if not scope.referral:
            continue
        ev = service.Evaluation(session=session, tenant=tenant, now=now, referral=referral)
        for user in prepared.users:
            if scope.covers(prepared.events.get(user, ())):
                await service.evaluate_referral(
                    ev, scope.activity, prepared.facts[user], mode="daily", until=scope.until
                )
        granted += len(ev.grants)
    return granted


# --------------------------------------------------------------------------- the run


def _passes(progress: dict[str, Any], scopes: Sequence[Scope]) -> list[dict[str, Any]]:
    """The run's passes, adding one for activities in scope that none covers yet."""
    passes: list[dict[str, Any]] = progress.setdefault("passes", [])
    for key in [k for k in progress if k != "passes"]:  # saved per activity
        value = progress.pop(key)
        passes.append(
            {
                "activities": [key],
                "after": None if value == "done" else value,
                "done": value == "done",
            }
        )
    covered = {a for p in passes for a in p["activities"]}
    basic = [s.id for s in scopes if not s.referral and s.id not in covered]
    if basic:
        passes.append({"activities": basic, "after": None, "done": False})
    for scope in scopes:
        if scope.referral and scope.id not in covered:
            passes.append({"activities": [scope.id], "after": None, "done": False})
    return passes


WRITERS = 2
"""Chunks of a basic pass written at once, each on its own connection: the grant inserts
are most of a run, and one transaction stream keeps one of PostgreSQL's cores busy."""


def _all_done_but(progress: dict[str, Any], current: dict[str, Any]) -> bool:
    return all(p["done"] for p in progress["passes"] if p is not current)


def _overlaps(scopes: Sequence[Scope]) -> bool:
    """May two chunks of this pass be written at once? Not when a chunk's writes share a
    row with the next chunk's: a prize's total quantity or the activity's budget (taken in
    candidate order, users by id, and locked until commit), nor for referral activities
    (inviter counters depend on the order of invitees). Everything else a chunk writes is
    keyed by its own users."""
    for scope in scopes:
        if scope.referral:
            return False
        limits = limits_of(scope.activity.config)
        if limits.totals or limits.budget is not None:
            return False
    return True


class _Writes:
    """The chunks of one pass being written, up to ``WRITERS`` at once, committed in chunk
    order: a chunk's decisions are written at once, but its cursor is saved (and its
    transaction committed) only after the chunk before it committed, so the saved cursor
    always ends a prefix of finished chunks and a crash resumes after it, as with one
    writer. The wait for the chunk before is an advisory lock that chunk holds until its
    transaction ends, taken in PostgreSQL so its deadlock detector sees it (two runs of the
    same day racing on overlapping users). A failed chunk fails the ones after it (they
    roll back; the run resumes after the last committed one)."""

    def __init__(
        self,
        db: Database,
        tenant: TenantContext,
        scopes: Sequence[Scope],
        clock: Clock,
        referral: ReferralLookup | None,
        progress: dict[str, Any],
        pass_: dict[str, Any],
        day: date,
    ) -> None:
        self.db, self.tenant, self.scopes = db, tenant, scopes
        self.clock, self.referral = clock, referral
        self.progress, self.pass_, self.day = progress, pass_, day
        self.writers = WRITERS if _overlaps(scopes) else 1
        self.in_flight: list[asyncio.Task[int]] = []
        # The chunks' order locks: this writer's own keys, from one random base.
        self.lock_base = uuid.uuid4().int >> 66
        self.count = 0

    async def start(self, prepared: _Prepared, *, last: bool) -> int:
        """Start writing a chunk; returns the grants of the chunks that finished meanwhile
        (waiting for the oldest while ``writers`` are in flight)."""
        previous = self.in_flight[-1] if self.in_flight else None
        holding = asyncio.Event()
        task = asyncio.create_task(
            self._write(prepared, self.lock_base + self.count, previous, holding, last)
        )
        self.count += 1
        self.in_flight.append(task)
        # The chunk holds its order lock before the next one may wait for it.
        held = asyncio.create_task(holding.wait())
        await asyncio.wait([task, held], return_when=asyncio.FIRST_COMPLETED)
        held.cancel()
        finished = 0
        while len(self.in_flight) >= self.writers:
            finished += await self.in_flight.pop(0)
        return finished

    async def finish(self) -> int:
        """Wait for every chunk in flight; returns their grants."""
        finished = 0
        while self.in_flight:
            finished += await self.in_flight.pop(0)
        return finished

    async def abandon(self) -> None:
        """After a failure: stop the chunks still in flight (they roll back)."""
        for task in self.in_flight:
            task.cancel()
        if self.in_flight:
            await asyncio.wait(self.in_flight)
            for task in self.in_flight:
                if not task.cancelled():
                    task.exception()  # retrieved: the first failure is the one reported
        self.in_flight = []

    async def _write(
        self,
        prepared: _Prepared,
        lock: int,
        previous: asyncio.Task[int] | None,
        holding: asyncio.Event,
        last: bool,
    ) -> int:
        async with self.db.session() as session:
            repo = DailyRunRepository.from_session(session)
            if self.writers > 1:
                await repo.hold_order_lock(lock)
            holding.set()
            made = await _write(
                session, self.tenant, self.scopes, prepared, self.clock.now(), self.referral
            )
            if previous is not None:
                await repo.hold_order_lock(lock - 1)  # the chunk before has ended …
                await previous  # … and committed (else this one fails and rolls back)
            self.pass_["after"] = prepared.users[-1]
            self.pass_["done"] = last
            await EvaluationRepository.from_session(session).save_progress(
                self.tenant.tenant_id, self.day, self.progress, made
            )
        return made


async def run_daily(
    db: Database,
    tenant_id: str,
    day: date,
    clock: Clock,
    referral: ReferralLookup | None,
    *,
    budget_seconds: float | None = None,
    chunk_size: int = CHUNK_SIZE,
) -> DailyRunResult:
    """The daily run of ``day`` (a local day of the tenant), resumable from its saved
    progress. Returns done=False when the time budget ran out (the caller continues it); at
    least one chunk is decided per call, so a continuation always makes progress."""
    started = time.monotonic()
    async with db.session() as session:
        repo = EvaluationRepository.from_session(session)
        run = await repo.start_run(tenant_id, day, clock.now())
        if run.status == "done":
            return DailyRunResult(tenant_id, day, True, 0)
        progress: dict[str, Any] = dict(run.progress or {})
        tenant = await tenant_context(session, tenant_id)
        day_start, day_end = day_bounds(day, tenant.zone)
        activities = await repo.published(
            tenant_id, ("basic", "referral"), ending_after=day_start - LOOKBACK
        )
    scopes = scopes_of(activities, day_start, day_end)
    by_id = {s.id: s for s in scopes}
    granted = 0
    # the chunks' facts and decisions spared the collector's walks (see collector_spared)
    with collector_spared():
        for pass_ in _passes(progress, scopes):
            if pass_["done"]:
                continue
            in_pass = [by_id[a] for a in pass_["activities"] if a in by_id]
            async with db.session() as session:
                users = await EventRepository.from_session(session).users_in_scopes(
                    tenant_id,
                    [(sorted(s.types), s.window.starts_at, s.until) for s in in_pass],
                    after=pass_["after"],
                )
            size = REFERRAL_CHUNK_SIZE if any(s.referral for s in in_pass) else chunk_size
            size = max(1, min(size, CHUNK_SIZE))
            if not users:
                pass_["done"] = True
                async with db.session() as session:
                    await EvaluationRepository.from_session(session).save_progress(
                        tenant_id, day, progress, 0
                    )
                continue
            chunks = [users[i : i + size] for i in range(0, len(users), size)]
            writes = _Writes(db, tenant, in_pass, clock, referral, progress, pass_, day)
            upcoming = asyncio.create_task(_prepare(db, tenant, in_pass, chunks[0]))
            try:
                for index in range(len(chunks)):
                    prepared = await upcoming
                    if index + 1 < len(chunks):
                        upcoming = asyncio.create_task(
                            _prepare(db, tenant, in_pass, chunks[index + 1])
                        )
                    granted += await writes.start(prepared, last=index + 1 == len(chunks))
                    over = (
                        budget_seconds is not None and time.monotonic() - started > budget_seconds
                    )
                    if over and not (index + 1 == len(chunks) and _all_done_but(progress, pass_)):
                        granted += await writes.finish()
                        return DailyRunResult(tenant_id, day, False, granted)
                granted += await writes.finish()
            except Exception:
                # The chunks decided before a failure are kept, as they would be one by one
                # (a failed chunk fails the ones after it, which roll back).
                with suppress(Exception):
                    await writes.finish()
                raise
            finally:  # a chunk prepared or written but not to be finished (cancelled, failure)
                await writes.abandon()
                upcoming.cancel()
                await asyncio.wait([upcoming])
                if not upcoming.cancelled():
                    upcoming.exception()  # retrieved: only the chunk being written reports
    async with db.session() as session:
        await EvaluationRepository.from_session(session).finish_run(tenant_id, day, clock.now())
    log.info("daily run %s %s: %d grants", tenant_id, day, granted)
    return DailyRunResult(tenant_id, day, True, granted)
