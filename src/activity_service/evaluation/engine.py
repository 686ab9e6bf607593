"""Pure decision rules of the evaluation (SPEC §1.4–§1.7): no I/O.

Given what is known of a user (``UserFacts``), a rule and a window, ``achievement`` says
whether and when the rule's task was completed. Timing (§1.5), tier selection, referral
ranges and grant keys are decided here too; the service module only loads facts and writes
the decisions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from activity_service.activities.rules import ACTION_TASKS, TaskType
from activity_service.progress.flows import (
    CUMULATIVE_TASKS,
    FIRST_TASKS,
    Flow,
    Reached,
    convert,
    cumulative_reached,
    cumulative_value,
    first_day_reached,
)
from activity_service.tenants.fx import NoRate, RateTable
from contracts.payloads import Node

GRANT_KEY_MAX = 200

# Which events may complete (or change) a task evaluated in real time at the event.
REAL_TIME_TRIGGERS: dict[TaskType, frozenset[str]] = {
    TaskType.register: frozenset({"user.registered"}),
    TaskType.open_account: frozenset({"account.opened"}),
    TaskType.enterprise_certification: frozenset({"enterprise.certified"}),
    TaskType.download: frozenset({"app.login", "user.registered"}),
    TaskType.first_deposit: frozenset({"cash.deposited"}),
    TaskType.first_transfer: frozenset({"stock.transferred_in"}),
}

# The referral node whose inviter is rewarded for a task (SPEC §1.7).
TASK_NODES: dict[TaskType, Node] = {
    TaskType.register: Node.registration,
    TaskType.download: Node.registration,
    TaskType.enterprise_certification: Node.registration,
    TaskType.open_account: Node.account_opening,
}


def node_of(task: TaskType) -> Node:
    """Deposit and transfer tasks (every amount task) use the deposit node."""
    return TASK_NODES.get(task, Node.deposit)


def is_real_time_task(task: TaskType) -> bool:
    """Completed at an event (action and first-day tasks); the cumulative ones are decided
    by the daily run."""
    return task in ACTION_TASKS or task in FIRST_TASKS


def grant_key(
    activity_id: str, rule_id: str, user_id: str, counterpart: str | None, period: str = "once"
) -> str:
    """Deterministic: the same decision always yields the same key, so it is made once.
    Over-long keys (long user ids) are shortened to a digest, still deterministic."""
    key = f"{activity_id}:{rule_id}:{user_id}:{counterpart or '-'}:{period}"
    if len(key) <= GRANT_KEY_MAX:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()
    return f"{activity_id}:{rule_id[:40]}:h:{digest}"[:GRANT_KEY_MAX]


@dataclass(frozen=True)
class Window:
    starts_at: datetime
    ends_at: datetime

    def contains(self, at: datetime) -> bool:
        return self.starts_at <= at < self.ends_at


@dataclass(frozen=True)
class Certification:
    at: datetime
    event_id: str
    enterprise_id: str
    enterprise_name: str | None = None


@dataclass
class UserFacts:
    """Everything the rules look at for one user, over their whole history."""

    user_id: str
    app_id: str | None = None
    registered_at: datetime | None = None
    opened_at: datetime | None = None
    new_device_login_at: datetime | None = None
    # The user's first login on any device (a new one or one seen before).
    first_login_at: datetime | None = None
    certifications: list[Certification] = field(default_factory=list)
    flows: list[Flow] = field(default_factory=list)


class Achievement(NamedTuple):
    """A named tuple: made once per completed rule of every user a run decides."""

    task: TaskType
    achieved_at: datetime
    value: Decimal | None = None
    enterprise_name: str | None = None


class MissingRate(Exception):
    """A flow could not be converted into the rule's currency."""


def not_done_reason(task: TaskType, facts: UserFacts, window: Window, at: datetime | None) -> str:
    """Why a task is not (yet) completed: the event at ``at`` fell outside the window, the
    user logged in only on devices first used by another account (download), or not yet."""
    if at is not None and not window.contains(at):
        return "outside_window"
    if (
        task is TaskType.download
        and facts.first_login_at is not None
        and facts.new_device_login_at is None
    ):
        return "device_seen_before"
    return "task_not_completed"


# A rule's task by its name, looked up per user and rule: cheaper than ``TaskType(…)``
# (which still answers, and refuses, a name not found here).
_TASKS = {task.value: task for task in TaskType}


def _in(window: Window, at: datetime | None, until: datetime) -> bool:
    return at is not None and window.contains(at) and at < until


def achievement(
    rule: dict[str, Any],
    facts: UserFacts,
    window: Window,
    *,
    zone: ZoneInfo,
    rates: RateTable,
    until: datetime | None = None,
) -> Achievement | None:
    """Whether the user completed ``rule``'s task inside the window, looking at facts before
    ``until`` (default: the window's end). Cumulative tasks answer "first reached" here; the
    at-end settlement uses ``final_value`` instead."""
    task = _TASKS.get(rule["task"]) or TaskType(rule["task"])
    limit = min(until, window.ends_at) if until is not None else window.ends_at
    if task is TaskType.register:
        if _in(window, facts.registered_at, limit):
            assert facts.registered_at is not None
            return Achievement(task, facts.registered_at)
        return None
    if task is TaskType.open_account:
        if _in(window, facts.opened_at, limit):
            assert facts.opened_at is not None
            return Achievement(task, facts.opened_at)
        return None
    if task is TaskType.download:
        if facts.registered_at is None or facts.new_device_login_at is None:
            return None
        done = max(facts.registered_at, facts.new_device_login_at)
        return Achievement(task, done) if _in(window, done, limit) else None
    if task is TaskType.enterprise_certification:
        wanted = rule.get("enterprise_id")
        for cert in sorted(facts.certifications, key=lambda c: (c.at, c.event_id)):
            if wanted and cert.enterprise_id != wanted:
                continue
            if _in(window, cert.at, limit):
                return Achievement(task, cert.at, enterprise_name=cert.enterprise_name)
        return None
    threshold = Decimal(str(rule["threshold"]))
    flows = _converted(facts.flows, rule["currency"], rates)
    reached: Reached | None
    if task in FIRST_TASKS:
        reached = first_day_reached(
            task, flows, threshold, since=window.starts_at, until=limit, zone=zone
        )
    else:
        reached = cumulative_reached(
            task, flows, threshold, since=window.starts_at, until=limit, zone=zone
        )
    return Achievement(task, reached.achieved_at, reached.value) if reached else None


def _converted(flows: Sequence[Flow], currency: str, rates: RateTable) -> list[Flow]:
    try:
        return convert(flows, currency, rates)
    except NoRate as exc:
        raise MissingRate(str(exc)) from exc


def final_value(
    rule: dict[str, Any], facts: UserFacts, window: Window, rates: RateTable
) -> tuple[Decimal, datetime | None]:
    """The cumulative metric over the whole window, and the time of the last flow in it."""
    task = TaskType(rule["task"])
    flows = _converted(facts.flows, rule["currency"], rates)
    value = cumulative_value(task, flows, since=window.starts_at, until=window.ends_at)
    last = max((f.occurred_at for f in flows if window.contains(f.occurred_at)), default=None)
    return value, last


def highest_tiers(
    rules: Sequence[dict[str, Any]],
    facts: UserFacts,
    window: Window,
    rates: RateTable,
    base_currency: str,
) -> list[tuple[dict[str, Any], datetime, Decimal]]:
    """At-end settlement of cumulative tasks: per task, only the highest tier whose
    threshold the whole-window metric reaches (thresholds compared in the base currency at
    the window's end when rules use several currencies)."""
    by_task: dict[str, list[dict[str, Any]]] = {}
    for rule in rules:
        if TaskType(rule["task"]) in CUMULATIVE_TASKS:
            by_task.setdefault(rule["task"], []).append(rule)
    chosen = []
    for task_rules in by_task.values():
        best: tuple[Decimal, dict[str, Any], datetime, Decimal] | None = None
        for rule in task_rules:
            value, last = final_value(rule, facts, window, rates)
            threshold = Decimal(str(rule["threshold"]))
            if last is None or value < threshold:
                continue
            try:
                rank = rates.convert(threshold, rule["currency"], base_currency, window.ends_at)
            except LookupError as exc:
                raise MissingRate(str(exc)) from exc
            if best is None or rank > best[0]:
                best = (rank, rule, last, value)
        if best is not None:
            chosen.append((best[1], best[2], best[3]))
    return chosen


@dataclass(frozen=True)
class TierAward:
    """What a qualifying invitee earns the inviter in a tiered rule."""

    rule_id: str
    prize_id: str
    bonus_rule_id: str | None = None
    bonus_prize_id: str | None = None


def tier_award(rule: dict[str, Any], seq: int) -> TierAward | None:
    """The range containing the inviter's ``seq``-th qualifying invitee gives its prize; the
    invitee who enters a range (seq == its min) also gives the range's one-off bonus."""
    for tier in rule.get("tiers", []):
        low, high = int(tier["min_invites"]), tier.get("max_invites")
        if seq < low or (high is not None and seq > int(high)):
            continue
        bonus = tier.get("bonus_prize_id")
        entering = seq == low and bonus is not None
        return TierAward(
            rule_id=f"{rule['id']}:{tier['id']}",
            prize_id=str(tier["prize_id"]),
            bonus_rule_id=f"{rule['id']}:{tier['id']}:bonus" if entering else None,
            bonus_prize_id=str(bonus) if entering else None,
        )
    return None


def run_day(now: datetime, zone: ZoneInfo, run_at: str) -> date:
    """The local day the daily run evaluates at ``now``: yesterday once the tenant's run
    time has passed today, else the day before (so late events of a day still count)."""
    local = now.astimezone(zone)
    hour, minute = (int(p) for p in run_at.split(":"))
    passed = (local.hour, local.minute) >= (hour, minute)
    return local.date() - timedelta(days=1 if passed else 2)


LOOKBACK = timedelta(days=7)
"""How far back a daily run still looks for windows that ended (a missed run is caught up
by the next one, since every decision is cumulative and keyed)."""


def in_daily_scope(window: Window, day_start: datetime, day_end: datetime) -> bool:
    """A real-time activity is evaluated by the run of a day its window overlaps, or by
    the runs of the week after it ended."""
    return window.starts_at < day_end and window.ends_at > day_start - LOOKBACK


def settles_in(window: Window, day_start: datetime, day_end: datetime) -> bool:
    """An at-end activity is settled on T+1: by the run of its last day (which runs the day
    after), or a catch-up run within a week."""
    return day_start - LOOKBACK < window.ends_at <= day_end
